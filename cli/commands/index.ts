import type { CommandEntry } from "../command.js";

/** Every sub-command, in the order `templar --help` lists them. Each loads its module on use. */
export const commands: Record<string, CommandEntry> = {
  key: { summary: "generate an OpenPGP signing key pair", load: () => import("./key.js") },
  build: {
    summary: "build templates from recipes (source, steps, inventory, pack)",
    load: async () => (await import("./build.js")).command,
  },
  pack: {
    summary: "pack a root filesystem directory into a template and manifest",
    load: async () => (await import("./pack.js")).default,
  },
  inspect: {
    summary: "show a template or manifest and verify its digests",
    load: async () => (await import("./inspect.js")).default,
  },
  recipe: {
    summary: "recipe lint: validate recipes without building",
    load: async () => (await import("./recipe.js")).command,
  },
};
