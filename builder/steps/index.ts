import { file } from "./file.js";
import { packages } from "./packages.js";
import { preset } from "./preset.js";
import { run } from "./run.js";
import type { StepKind } from "./step.js";

/** The ONE table of step kinds (`- <kind>: <config>` in a recipe's `steps:`). */
export const stepKinds: Record<string, StepKind> = {
  [preset.name]: preset,
  [file.name]: file,
  [packages.name]: packages,
  [run.name]: run,
};
