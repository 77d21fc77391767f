import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { formatPlace } from "../recipe/schema.js";
import { existsInRoot } from "../rootfs.js";
import { runStepScript } from "./in-root.js";
import { defineStep } from "./step.js";

const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9+._:@/-]*$/, "expected a package name");
const PackagesConfig = z
  .strictObject({ install: z.array(name).default([]), remove: z.array(name).default([]) })
  .refine((c) => c.install.length + c.remove.length > 0, "expected packages to install or remove");

/**
 * `- packages: { install: [...], remove: [...] }` with the family's package manager inside the
 * root. The host's package cache is bound over the manager's archive directory, so packages
 * fetched here are reused by the next build too.
 */
export const packages = defineStep({
  name: "packages",
  schema: PackagesConfig,
  async run(config, ctx) {
    const pm = ctx.family.packageManager;
    const binds = [];
    if (pm.archiveDir && pm.cacheSubdir && (await existsInRoot(ctx.root, pm.archiveDir))) {
      const cache = join(ctx.cacheDir, pm.cacheSubdir);
      await mkdir(join(cache, "partial"), { recursive: true, mode: 0o700 });
      binds.push({ source: cache, target: pm.archiveDir });
    }
    const scripts = [];
    if (config.install.length) scripts.push(pm.installScript(config.install));
    if (config.remove.length) scripts.push(pm.removeScript(config.remove));
    await runStepScript(ctx, `packages step at ${formatPlace(ctx.place)}`, scripts.join(" && "), binds);
  },
});
