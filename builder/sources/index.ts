import { archive } from "./archive.js";
import { debootstrap } from "./debootstrap.js";
import type { SourceMethod } from "./source.js";

/** The ONE table of source methods (`source: { method: <name> }` in a recipe). */
export const sourceMethods: Record<string, SourceMethod> = {
  [debootstrap.name]: debootstrap,
  [archive.name]: archive,
};
