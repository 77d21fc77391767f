import type { CommandEntry } from "../command.js";

/** Every sub-command, in the order `templar --help` lists them. Each loads its module on use. */
export const commands: Record<string, CommandEntry> = {
  build: {
    summary: "build templates from recipes (source, steps, inventory, pack)",
    load: async () => (await import("./build.js")).command,
  },
  recipe: {
    summary: "recipe lint: validate recipes without building",
    load: async () => (await import("./recipe.js")).command,
  },
};
