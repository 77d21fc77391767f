import { mkdtempSync, rmSync } from "node:fs";
import { mkdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { AtomicFile, writeFileAtomic } from "../../common/atomic.js";
import { chooseCodec } from "../../common/compression/codecs.js";
import { sha256Hex, toDigest } from "../../common/digest.js";
import { ExitCode, UserError, usageError } from "../../common/errors.js";
import { FORMATS, type Format, type HostMetaFormat } from "../../common/formats.js";
import { hostIdentity } from "../../common/host-identity.js";
import type { Artifact, Manifest } from "../../common/manifest.js";
import { artifactFileName, manifestFileName, serializeManifest } from "../../common/manifest-files.js";
import { assertTemplateName, assertVersion } from "../../common/names.js";
import { type CompressSink, openCompressSink, openFifoSink } from "./compress-sink.js";
import { makeFifos, releasePendingOpens } from "./fifo.js";
import { combinedSha256, hostMetaBytes } from "./host-meta.js";
import { CompressorGoneError, produceTar, type TarProduction } from "./tar-producer.js";
import type { PackOptions, PackResult } from "./types.js";
import { readTreeXattrs } from "./xattrs.js";

export const DEFAULT_FORMATS: Format[] = ["tar.zst", "tar.gz"];

/** Temporary outputs of packs in progress, so an interrupted `templar pack` can remove them. */
const inProgress = new Set<string>();

/** Fifos of packs in progress: an exit must first release opens still waiting on them. */
const activeFifos = new Set<string>();

/**
 * Removes every temporary output of packs still running (for SIGINT/SIGTERM handlers), and
 * releases fifo opens still pending in the libuv pool, which would otherwise block the exit.
 */
export function removePartialOutputsSync(): void {
  // A reader (compressor side) and the writer (the tar producer) may each still wait.
  for (const fifo of activeFifos) releasePendingOpens(fifo, "both");
  for (const path of inProgress) rmSync(path, { force: true });
  for (const fifo of activeFifos) rmSync(dirname(fifo), { recursive: true, force: true });
  inProgress.clear();
  activeFifos.clear();
}

function checkEpoch(value: number | undefined): number | undefined {
  if (value !== undefined && (!Number.isSafeInteger(value) || value < 0)) {
    throw usageError(`source date epoch ${value} is not a whole number of seconds >= 0`);
  }
  return value;
}

async function checkRootfs(rootfs: string): Promise<string> {
  const root = resolve(rootfs);
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(root);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT")
      throw new UserError(`rootfs directory ${rootfs} does not exist`, ExitCode.notFound);
    throw new UserError(`cannot read rootfs directory ${rootfs}: ${code}`);
  }
  if (!info.isDirectory()) throw new UserError(`rootfs ${rootfs} is not a directory`);
  return root;
}

/** Orders manifest keys as docs/formats.md shows them, whatever order the caller's fields come in. */
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
 * Writes the host metadata tarballs next to the artifacts and lists them in `manifest` (their
 * bytes depend on its fields, not on the artifacts). Incus's entry carries the fingerprint.
 */
async function writeHostMeta(
  manifest: Manifest,
  meta: HostMetaFormat[],
  outDir: string,
  rootfsXz: string | undefined,
): Promise<{ format: HostMetaFormat; path: string }[]> {
  const written: { format: HostMetaFormat; path: string }[] = [];
  for (const format of meta) {
    const bytes = hostMetaBytes(manifest, format);
    const artifact: Artifact = { format, digest: toDigest(sha256Hex(bytes)), size: bytes.length };
    if (format === "incus-meta.tar.xz") artifact.combinedSha256 = await combinedSha256(bytes, rootfsXz!);
    const path = join(outDir, artifactFileName(manifest.name, manifest.version, format));
    await writeFileAtomic(path, bytes);
    written.push({ format, path });
    manifest.artifacts.push(artifact);
  }
  return written;
}

/**
 * Packs a root filesystem into a deterministic tar, compressed into every requested format in
 * one pass over the tree, and writes `<name>-<version>.<format>` files plus the manifest. Output
 * files appear only when everything succeeded.
 */
/** The output must not be inside the tree being packed (it would pack itself). */
export function assertOutsideRoot(rootfs: string, outDir: string, shownRoot = rootfs): void {
  const rel = relative(resolve(rootfs), resolve(outDir));
  if (rel === "" || (!rel.startsWith(`..${sep}`) && rel !== ".." && !isAbsolute(rel))) {
    throw usageError(`output directory ${outDir} must not be inside the rootfs ${shownRoot}`);
  }
}

export async function packTemplate(options: PackOptions): Promise<PackResult> {
  assertTemplateName(options.name);
  assertVersion(options.version);
  const meta = [...new Set(options.meta ?? [])];
  // The host metadata goes with rootfs.tar.xz: both clients fetch the root filesystem as xz.
  const formats = [
    ...new Set([...(options.formats ?? DEFAULT_FORMATS), ...(meta.length ? ["tar.xz" as const] : [])]),
  ];
  if (formats.length === 0) throw usageError("no output format given");
  for (const f of formats) {
    if (!FORMATS.includes(f))
      throw usageError(`unknown format ${JSON.stringify(f)} (known: ${FORMATS.join(", ")})`);
  }
  if (meta.length && !hostIdentity({ name: options.name, ...options.manifestFields })) {
    throw usageError(
      `${options.name}: ${meta.join(", ")} need a distro and release: name the template <distro>-<release>-<arch>[-<flavour>]`,
    );
  }
  const sde = checkEpoch(options.sourceDateEpoch);
  const root = await checkRootfs(options.rootfs);
  const outDir = resolve(options.outDir);
  assertOutsideRoot(root, options.outDir, options.rootfs);
  const choices = formats.map((f) => chooseCodec(f, "compress", options.inProcessOnly));
  await mkdir(outDir, { recursive: true });

  const targets = formats.map(
    (f) => new AtomicFile(join(outDir, artifactFileName(options.name, options.version, f))),
  );
  const sinks: CompressSink[] = [];
  const committed: string[] = [];
  let production: TarProduction | undefined;
  for (const t of targets) inProgress.add(t.tempPath);
  let fifoDir: string | undefined;
  try {
    // Start-up latency counts (the reference is tar | zstd): getfattr runs while the fifos are
    // made and the compressors start; the tree is read once the xattrs are known.
    const xattrs = options.xattrs ?? readTreeXattrs(root);
    xattrs.catch(() => {});
    const useFifos = choices.some((c) => c.kind === "program");
    if (useFifos) fifoDir = mkdtempSync(join(tmpdir(), "templar-pack-"));
    const fifoOf = choices.map((c, i) =>
      fifoDir && c.kind === "program" ? join(fifoDir, `${i}.fifo`) : undefined,
    );
    const fifos = fifoOf.filter((f): f is string => f !== undefined);
    for (const f of fifos) activeFifos.add(f);
    await makeFifos(fifos);
    for (const [i, choice] of choices.entries()) {
      const fifo = fifoOf[i];
      if (fifo && choice.kind === "program") sinks.push(openFifoSink(choice, targets[i]!.tempPath, fifo));
      else sinks.push(await openCompressSink(choice, targets[i]!.tempPath));
    }
    // Sinks fed chunk by chunk: the in-process compressors.
    const relaySinks = sinks.filter((_, i) => !fifoOf[i]);
    let sinkError: Error | undefined;
    const deliver = (chunk: Buffer, _entries: number, release: () => void) => {
      let pending = relaySinks.length;
      for (const sink of relaySinks) {
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
      fifos,
      // The producer's writes block: every compressor must be running before the first one.
      compressorsStarted: Promise.all(sinks.map((sink) => sink.started)).then(() => {}),
      yieldToCompressors: choices.every((c) => c.kind === "program" && c.spec.readsAhead),
      onProgress: options.onProgress,
      onChunk: relaySinks.length === 0 ? undefined : deliver,
    });
    production.done.catch(() => {});
    const { entries, size, warnings, sha256 } = await Promise.race([
      production.done,
      ...sinks.map((s) => s.failed),
    ]);
    if (sinkError) throw sinkError;
    await Promise.all(sinks.map((s) => s.finish()));
    const artifacts: Artifact[] = await Promise.all(
      formats.map(async (format, i) => {
        const { hex, size: bytes } = await sinks[i]!.digest();
        return { format, digest: toDigest(hex), size: bytes };
      }),
    );
    const created = new Date(sde !== undefined ? sde * 1000 : Date.now())
      .toISOString()
      .replace(/\.\d{3}Z$/, "Z");
    const manifest = buildManifest(
      options,
      created,
      { tarSha256: sha256, tarSize: size, entries },
      artifacts,
    );
    const metaFiles = await writeHostMeta(
      manifest,
      meta,
      outDir,
      targets[formats.indexOf("tar.xz")]?.tempPath,
    );
    for (const m of metaFiles) committed.push(m.path);
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
    for (const m of metaFiles) files[m.format] = m.path;
    return { manifest, manifestPath, files, warnings };
  } catch (err) {
    // Compressors first: the producer may be waiting for one of them (a fifo open, a chunk).
    const grace = err instanceof CompressorGoneError ? 2000 : 0;
    await Promise.all(sinks.map((s) => s.abort(grace)));
    await production?.cancel();
    await Promise.all([...targets.map((t) => t.abort()), ...committed.map((p) => rm(p, { force: true }))]);
    if (err instanceof CompressorGoneError) {
      // The reader saw EPIPE; the compressor's own exit (recorded before abort returned) says why.
      throw sinks.map((s) => s.failure()).find((e) => e !== undefined) ?? err;
    }
    throw err;
  } finally {
    for (const t of targets) inProgress.delete(t.tempPath);
    for (const f of activeFifos) if (fifoDir && f.startsWith(fifoDir)) activeFifos.delete(f);
    if (fifoDir) await rm(fifoDir, { recursive: true, force: true });
  }
}
