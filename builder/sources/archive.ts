import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { archAs } from "../../common/arch.js";
import { type AcquireOptions, acquire } from "./archive/acquire.js";
import { type ArchiveConfig, ArchiveConfigSchema } from "./archive/config.js";
import { discover } from "./archive/discover.js";
import { applyLayout } from "./archive/layouts.js";
import { defineSource, type ProbeContext } from "./source.js";

/**
 * CentOS Stream, Fedora, Gentoo (and any distro that publishes a root filesystem): the
 * official artifact, found through a fixed URL, an index or a name pattern, downloaded into
 * `<cache>/archive/` (resumed, reused while upstream's checksum still matches), verified
 * against pinned keys or a pinned sha256 (builder/sources/archive/acquire.ts), and only then unpacked
 * into the root by the safe extractor (builder/sources/archive/extract.ts). The manifest's `source`
 * says what was verified and how.
 */
/** Where an archive source's files come from and go, for this build: the recipe's placeholders. */
function acquireOptions(ctx: ProbeContext): AcquireOptions {
  return {
    cacheDir: ctx.cacheDir,
    recipeDir: dirname(resolve(ctx.recipe.path)),
    values: {
      arch: ctx.recipe.arch,
      debarch: archAs(ctx.recipe.arch, "debian"),
      release: ctx.recipe.release,
    },
    signal: ctx.signal,
    log: ctx.log,
  };
}

export const archive = defineSource<ArchiveConfig>({
  name: "archive",
  schema: ArchiveConfigSchema,
  async probe(config, ctx) {
    // Keys, index and checksum file: a new upstream build changes the index or checksum file
    // (or the artifact's name), so these small files tell without fetching the artifact.
    const found = await discover(config, acquireOptions(ctx));
    return {
      artifact: found.artifactUrl,
      inputs: found.inputs.flatMap((i) => (i.sha256 ? [{ uri: i.uri, sha256: i.sha256 }] : [])),
    };
  },
  async populate(config, ctx) {
    const got = await acquire(config, { ...acquireOptions(ctx), progress: Boolean(process.stderr.isTTY) });
    ctx.log(`${got.artifactUrl}: verified (${got.verified}), sha256 ${got.sha256}`);
    // Uncompressed layers go next to the root (same filesystem, removed after).
    await mkdir(dirname(ctx.root), { recursive: true });
    const work = await mkdtemp(join(dirname(ctx.root), "archive-"));
    try {
      const layout = await applyLayout(config.layout, got.path, ctx.root, {
        workDir: work,
        ociArch: archAs(ctx.recipe.arch, "debian"),
        ...(config.maxSize ? { maxBytes: config.maxSize } : {}),
        signal: ctx.signal,
        log: ctx.log,
      });
      return {
        manifest: {
          method: "archive",
          layout: layout.found ?? config.layout,
          artifact: got.artifactUrl,
          sha256: got.sha256,
          verified: got.verified,
          ...(layout.layers.length ? { layers: layout.layers.map((hex) => `sha256:${hex}`) } : {}),
          inputs: got.inputs,
        },
        fetched: { files: got.fromCache ? 0 : 1, bytes: got.fetchedBytes },
      };
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  },
});
