import { createHash } from "node:crypto";
import { rmSync } from "node:fs";
import { mkdir, rm, stat } from "node:fs/promises";
import { join, relative, resolve, sep } from "node:path";
import { AtomicFile, writeFileAtomic } from "../../common/atomic.js";
import { sha256File, toDigest } from "../../common/digest.js";
import { UserError, usageError } from "../../common/errors.js";
import type { Artifact, Manifest } from "../../common/manifest.js";
import {
  artifactFileName,
  FORMATS,
  type Format,
  manifestFileName,
  serializeManifest,
} from "../../common/manifest-files.js";
import { assertTemplateName, assertVersion } from "../../common/names.js";
import { chooseCodec } from "./codecs.js";
import { type CompressSink, openCompressSink } from "./compress-sink.js";
import { produceTar, type TarProduction } from "./tar-producer.js";
import type { PackOptions, PackResult } from "./types.js";
import { readTreeXattrs } from "./xattrs.js";

export const DEFAULT_FORMATS: Format[] = ["tar.zst", "tar.gz"];

/** Temporary outputs of packs in progress, so an interrupted `templar pack` can remove them. */
const inProgress = new Set<string>();

/** Removes every temporary output of packs still running (for SIGINT/SIGTERM handlers). */
export function removePartialOutputsSync(): void {
  for (const path of inProgress) rmSync(path, { force: true });
  inProgress.clear();
}

/** SOURCE_DATE_EPOCH from the option or the environment; undefined when neither is set. */
export function resolveSourceDateEpoch(value: number | undefined): number | undefined {
  if (value !== undefined) {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw usageError(`source date epoch ${value} is not a whole number of seconds >= 0`);
    }
    return value;
  }
  const env = process.env.SOURCE_DATE_EPOCH;
  if (env === undefined || env === "") return undefined;
  if (!/^\d+$/.test(env))
    throw usageError(`SOURCE_DATE_EPOCH=${JSON.stringify(env)} is not a whole number of seconds`);
  return Number(env);
}

async function checkRootfs(rootfs: string): Promise<string> {
  const root = resolve(rootfs);
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(root);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new UserError(`rootfs directory ${rootfs} does not exist`);
    throw new UserError(`cannot read rootfs directory ${rootfs}: ${code}`);
  }
  if (!info.isDirectory()) throw new UserError(`rootfs ${rootfs} is not a directory`);
  return root;
}

/** Orders manifest keys as DESIGN.md shows them, whatever order the caller's fields come in. */
function buildManifest(
  options: PackOptions,
  created: string,
  rootfs: Manifest["rootfs"],
  artifacts: Artifact[],
): Manifest {
  const { packages, ...extra } = options.manifestFields ?? {};
  const manifest: Record<string, unknown> = {
    schemaVersion: 1,
    name: options.name,
    version: options.version,
  };
  for (const key of ["distro", "release", "arch", "flavour", "description"] as const) {
    if (extra[key] !== undefined) manifest[key] = extra[key];
  }
  manifest.created = created;
  for (const [key, value] of Object.entries(extra)) {
    if (!(key in manifest) && value !== undefined) manifest[key] = value;
  }
  manifest.rootfs = rootfs;
  manifest.artifacts = artifacts;
  if (packages) manifest.packages = packages;
  // Not re-validated with zod here: loading zod costs ~150 ms of `templar pack` start-up; every
  // field is either computed above or typed at the caller, and every reader validates.
  return manifest as Manifest;
}

/**
 * Packs a root filesystem into a deterministic tar, compressed into every requested format in
 * one pass over the tree, and writes `<name>-<version>.<format>` files plus the manifest. Output
 * files appear only when everything succeeded.
 */
export async function packTemplate(options: PackOptions): Promise<PackResult> {
  assertTemplateName(options.name);
  assertVersion(options.version);
  const formats = [...new Set(options.formats ?? DEFAULT_FORMATS)];
  if (formats.length === 0) throw usageError("no output format given");
  for (const f of formats) {
    if (!FORMATS.includes(f))
      throw usageError(`unknown format ${JSON.stringify(f)} (known: ${FORMATS.join(", ")})`);
  }
  const sde = resolveSourceDateEpoch(options.sourceDateEpoch);
  const root = await checkRootfs(options.rootfs);
  const outDir = resolve(options.outDir);
  const rel = relative(root, outDir);
  if (rel === "" || (!rel.startsWith(`..${sep}`) && rel !== ".." && !rel.startsWith(sep))) {
    throw usageError(`output directory ${options.outDir} must not be inside the rootfs ${options.rootfs}`);
  }
  const choices = formats.map((f) => chooseCodec(f, "compress", options.inProcessOnly));
  await mkdir(outDir, { recursive: true });

  const targets = formats.map(
    (f) => new AtomicFile(join(outDir, artifactFileName(options.name, options.version, f))),
  );
  const sinks: CompressSink[] = [];
  const committed: string[] = [];
  let production: TarProduction | undefined;
  for (const t of targets) inProgress.add(t.tempPath);
  try {
    // Start-up latency counts (the reference is tar | zstd): getfattr and the reader thread start
    // first, the compressors while they warm up; early chunks wait in `queued`.
    const xattrs = readTreeXattrs(root);
    xattrs.catch(() => {});
    const hash = createHash("sha256");
    let tarBytes = 0;
    let sinkError: Error | undefined;
    let queued: [Buffer, () => void][] | undefined = [];
    const deliver = (chunk: Buffer, release: () => void) => {
      let pending = sinks.length;
      for (const sink of sinks) {
        sink.write(chunk, (err) => {
          if (err) sinkError ??= err;
          if (--pending === 0) release();
        });
      }
    };
    production = produceTar({
      root,
      mtimeClamp: sde,
      xattrs,
      onChunk: (chunk, entriesSoFar, release) => {
        // Hashing here overlaps with the worker filling the next chunk.
        hash.update(chunk);
        tarBytes += chunk.length;
        options.onProgress?.(tarBytes, entriesSoFar);
        if (queued) queued.push([chunk, release]);
        else deliver(chunk, release);
      },
    });
    production.done.catch(() => {});
    for (const [i, choice] of choices.entries())
      sinks.push(await openCompressSink(choice, targets[i]!.tempPath));
    for (const [chunk, release] of queued) deliver(chunk, release);
    queued = undefined;
    const { entries, size, warnings } = await Promise.race([production.done, ...sinks.map((s) => s.failed)]);
    if (sinkError) throw sinkError;
    await Promise.all(sinks.map((s) => s.finish()));
    const artifacts: Artifact[] = await Promise.all(
      formats.map(async (format, i) => {
        const { hex, size: bytes } = await sha256File(targets[i]!.tempPath);
        return { format, digest: toDigest(hex), size: bytes };
      }),
    );
    const created = new Date(sde !== undefined ? sde * 1000 : Date.now())
      .toISOString()
      .replace(/\.\d{3}Z$/, "Z");
    const manifest = buildManifest(
      options,
      created,
      { tarSha256: hash.digest("hex"), tarSize: size, entries },
      artifacts,
    );
    const manifestPath = join(outDir, manifestFileName(options.name, options.version));
    for (const target of targets) {
      await target.commit();
      committed.push(target.finalPath);
    }
    await writeFileAtomic(manifestPath, serializeManifest(manifest));
    const files: PackResult["files"] = {};
    formats.forEach((f, i) => {
      files[f] = targets[i]!.finalPath;
    });
    return { manifest, manifestPath, files, warnings };
  } catch (err) {
    await production?.cancel();
    await Promise.all(sinks.map((s) => s.abort()));
    await Promise.all([...targets.map((t) => t.abort()), ...committed.map((p) => rm(p, { force: true }))]);
    throw err;
  } finally {
    for (const t of targets) inProgress.delete(t.tempPath);
  }
}
