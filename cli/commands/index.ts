import type { CommandEntry } from "../command.js";

/** Every sub-command, in the order `templar --help` lists them. Each loads its module on use. */
export const commands: Record<string, CommandEntry> = {
  key: { summary: "generate an OpenPGP signing key pair", load: () => import("./key.js") },
};
