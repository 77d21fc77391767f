import type { CommandEntry } from "../command.js";

/** Every sub-command, in the order `templar --help` lists them. Each loads its module on use. */
export const commands: Record<string, CommandEntry> = {
  doctor: {
    summary: "what this machine lacks for pack, build and test (programs, packages, root)",
    load: async () => (await import("./doctor.js")).command,
  },
  key: {
    summary: "generate an OpenPGP signing key pair",
    load: async () => (await import("./key.js")).command,
  },
  build: {
    summary: "build templates from recipes (source, steps, inventory, pack)",
    load: async () => (await import("./build.js")).command,
  },
  test: {
    summary: "boot templates in a throwaway container and check them (network, sshd, units)",
    load: async () => (await import("./test.js")).command,
  },
  pack: {
    summary: "pack a root filesystem directory into a template and manifest",
    load: async () => (await import("./pack.js")).command,
  },
  inspect: {
    summary: "show a template or manifest and verify its digests",
    load: async () => (await import("./inspect.js")).command,
  },
  serve: { summary: "run the template registry", load: async () => (await import("./serve.js")).command },
  push: {
    summary: "upload templates (out/ directory or manifest) to a registry",
    load: async () => (await import("./push.js")).command,
  },
  pull: {
    summary: "download a verified template into the template cache",
    load: async () => (await import("./pull.js")).command,
  },
  tag: {
    summary: "point a tag of a template at a version on a registry (tag NAME@VERSION TAG)",
    load: async () => (await import("./tag.js")).command,
  },
  untag: {
    summary: "remove a tag of a template from a registry (untag NAME TAG)",
    load: async () => (await import("./tag.js")).untag,
  },
  delete: {
    summary: "delete a version of a template from a registry (delete NAME@VERSION)",
    load: async () => (await import("./delete.js")).command,
  },
  list: {
    summary: "templates in the local cache, or a registry's catalog (--remote)",
    load: async () => (await import("./list.js")).command,
  },
  update: {
    summary: "pull newer versions of templates in the local cache (--all)",
    load: async () => (await import("./update.js")).command,
  },
  prune: {
    summary: "remove local templates the registry no longer has",
    load: async () => (await import("./prune.js")).command,
  },
  diff: {
    summary: "what changed between two template versions (packages, sizes, delta)",
    load: async () => (await import("./diff.js")).command,
  },
  mirror: {
    summary: "copy templates from a registry to a registry, directory or bucket",
    load: async () => (await import("./mirror.js")).command,
  },
  token: {
    summary: "create a registry token (token create --scope ...)",
    load: async () => (await import("./token.js")).command,
  },
  gc: {
    summary: "delete unreferenced blobs and abandoned uploads",
    load: async () => (await import("./gc.js")).command,
  },
  recipe: {
    summary: "recipe lint: validate recipes without building",
    load: async () => (await import("./recipe.js")).command,
  },
};
