import type { CommandEntry } from "../command.js";

/** Every sub-command, in the order `templar --help` lists them. Each loads its module on use. */
export const commands: Record<string, CommandEntry> = {
  serve: { summary: "run the template registry", load: async () => (await import("./serve.js")).command },
  token: {
    summary: "create a registry token (token create --scope ...)",
    load: async () => (await import("./token.js")).command,
  },
  gc: {
    summary: "delete unreferenced blobs and abandoned uploads",
    load: async () => (await import("./gc.js")).command,
  },
};
