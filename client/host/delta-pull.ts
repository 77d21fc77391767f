import { createReadStream } from "node:fs";
import { rm } from "node:fs/promises";
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import {
  chainCodecIntoNewFile,
  codecFilter,
  codecIntoNewFile,
  hashTap,
  spawnFilter,
} from "../../common/compression/filters.js";
import { type DeltaEntry, DeltaIndexSchema, MAX_DELTA_INDEX_BYTES } from "../../common/delta.js";
import { sha256File } from "../../common/digest.js";
import { errorMessage } from "../../common/errors.js";
import type { Format } from "../../common/formats.js";
import { type Manifest, parseManifest } from "../../common/manifest.js";
import { formatBytes } from "../../common/progress.js";
import { downloadBlob } from "../download.js";
import { type RegistryClient, templatePath } from "../http.js";
import { type CachePaths, cacheFile, type Origin, readStateFile } from "./cache.js";
import { type DeltaMode, hostSpeeds, linkMeter, recordRebuildSpeed, routeCosts } from "./delta-choice.js";

/**
 * Updating a cached template with a delta patch instead of the full artifact: the registry's
 * delta index for the new version names a zstd `--patch-from` patch from the tar the cache
 * holds (by its sha256); the patch is downloaded, the cached file decompressed, the patch
 * applied and the resulting tar compressed into the requested format; the result is checked
 * against the signed manifest (the artifact's digest, or `rootfs.tarSha256` of the tar inside
 * when this host's compressor wrote other bytes). Everything is written to state files
 * and only renamed into place by the caller; on any problem they are removed and the caller
 * downloads the full artifact.
 */
export interface DeltaPullOptions {
  manifest: Manifest;
  format: Format;
  /** The cache's record of the file there now (an older version of this template and format). */
  origin: Origin;
  paths: CachePaths;
  /** The cached older version's file. */
  cached: string;
  /** Patches needing a larger zstd window are refused (memory: about 2^windowLog bytes). */
  maxWindowLog: number;
  /** `auto`: go on with the patch only when rebuilding beats a full download. */
  mode: Exclude<DeltaMode, "never">;
  onProgress?: (received: number, total: number) => void;
  /** What is happening, in a sentence (shown on the terminal). */
  onNote?: (note: string) => void;
}

/** What the delta route came to: a rebuilt file, or the full download to do instead. */
export type DeltaResult =
  | { route: "delta"; outcome: DeltaOutcome }
  /** `patchBytes`: patch bytes downloaded before the route was left (0 when none). */
  | { route: "full"; patchBytes: number };

export interface DeltaOutcome {
  /** The rebuilt file, complete and verified, for the caller to rename into place. */
  rebuilt: string;
  /** The rebuilt file's digest and size (may differ from the registry's artifact: recompressed here). */
  local: { digest: string; size: number };
  fromVersion: string;
  /** Bytes of patch downloaded. */
  transferred: number;
}

/** No patch taken and none downloaded: the full download it is. */
const NO_PATCH: DeltaResult = { route: "full", patchBytes: 0 };

/** The patch is here, and the rest of a full download would finish before a rebuild. */
class FullIsFaster extends Error {}

/** State files of one delta application, beside the cache's other state files. */
export function deltaPaths(paths: CachePaths, hex: string) {
  const file = paths.origin.slice(paths.origin.lastIndexOf("/") + 1).replace(/\.origin\.json$/, "");
  return {
    patch: cacheFile(paths.dest, `${file}.${hex.slice(0, 12)}.patch`, "state"),
    fromTar: cacheFile(paths.dest, `${file}.${hex.slice(0, 12)}.from.tar`, "state"),
    rebuilt: cacheFile(paths.dest, `${file}.${hex.slice(0, 12)}.rebuilt`, "state"),
  };
}

/** The tar the cached file unpacks to, as its origin record (or, for older records, its saved manifest) says. */
async function cachedTarSha256(origin: Origin, paths: CachePaths): Promise<string | null> {
  if (origin.tarSha256) return origin.tarSha256;
  const bytes = await readStateFile(paths.manifest);
  if (!bytes) return null;
  try {
    return parseManifest(bytes, paths.manifest).rootfs.tarSha256;
  } catch {
    return null;
  }
}

/**
 * Tries the delta route; returns the full download to do instead (after a note saying why, with
 * nothing left behind) when there is no usable patch, it does not pay, or applying it failed.
 */
export async function pullByDelta(client: RegistryClient, options: DeltaPullOptions): Promise<DeltaResult> {
  const { manifest, origin, paths } = options;
  const what = `${manifest.name}@${manifest.version}`;
  const note = (text: string) => options.onNote?.(text);
  if (origin.format !== options.format || origin.name !== manifest.name) return NO_PATCH;
  const fromTar = await cachedTarSha256(origin, paths);
  if (!fromTar || fromTar === manifest.rootfs.tarSha256) return NO_PATCH;

  let entry: DeltaEntry | undefined;
  try {
    const body = await client.getOptional(
      templatePath(manifest.name, manifest.version, "deltas"),
      `delta index of ${what}`,
      MAX_DELTA_INDEX_BYTES,
    );
    if (!body) return NO_PATCH;
    const index = DeltaIndexSchema.parse(JSON.parse(body.toString("utf8")));
    if (index.tarSha256 !== manifest.rootfs.tarSha256) return NO_PATCH;
    entry = index.deltas.find((d) => d.fromTarSha256 === fromTar);
  } catch (err) {
    note(`no delta: cannot read the delta index (${errorMessage(err)}); downloading the full artifact`);
    return NO_PATCH;
  }
  const artifact = manifest.artifacts.find((a) => a.format === options.format);
  if (!entry || !artifact) return NO_PATCH;
  if (entry.windowLog > options.maxWindowLog) {
    note(
      `no delta: the patch from ${origin.version} needs a 2^${entry.windowLog}-byte zstd window, over this host's limit of 2^${options.maxWindowLog}; downloading the full artifact`,
    );
    return NO_PATCH;
  }
  if (entry.size >= artifact.size) return NO_PATCH;

  const hex = entry.digest.slice("sha256:".length);
  const files = deltaPaths(paths, hex);
  const cleanup = async (all: boolean) => {
    await rm(files.patch, { force: true });
    await rm(files.fromTar, { force: true });
    if (all) await rm(files.rebuilt, { force: true });
  };
  // --delta auto: is rebuilding expected to beat a full download? (delta-choice.ts)
  const measured =
    options.mode === "auto" ? await hostSpeeds(paths.dest, options.format, client.display) : null;
  const speed = measured?.rebuild;
  const fullIsFaster = (linkBytesPerSecond: number, measuredOn: string): string | null => {
    if (!speed) return null;
    const costs = routeCosts({
      tarSize: manifest.rootfs.tarSize,
      artifactSize: artifact.size,
      linkBytesPerSecond,
      rebuildBytesPerSecond: speed.bytesPerSecond,
    });
    if (costs.rebuild <= costs.download) return null;
    return `no delta: rebuilding ${formatBytes(manifest.rootfs.tarSize)} of tar takes about ${costs.rebuild.toFixed(1)} s here (${speed.measured ? "as this host last measured" : "a first estimate"}), the full ${formatBytes(artifact.size)} about ${costs.download.toFixed(1)} s at ${formatBytes(linkBytesPerSecond)}/s (${measuredOn}); downloading the full artifact (--delta always takes the patch)`;
  };
  const known = measured?.link ?? null;
  const before = known ? fullIsFaster(known, "the last full download from this registry") : null;
  if (before) {
    note(before);
    return NO_PATCH;
  }
  note(`delta from ${origin.version}: ${entry.size} bytes instead of ${artifact.size}`);
  const unpacking = new AbortController();
  let patchBytes = 0;
  try {
    await cleanup(true);
    // The cached file is unpacked while the patch downloads: zstd --patch-from needs it as a
    // file. No byte of the tars passes through Node (for a 195 MiB tar that is most of the
    // time): the programs read and write files, or each other's pipe.
    const started = performance.now();
    const link = linkMeter(started, entry.size);
    let unpackSeconds = 0;
    const [downloaded, unpacked] = await Promise.allSettled([
      downloadBlob(client, {
        digest: entry.digest,
        size: entry.size,
        partial: files.patch,
        what: `delta ${origin.version} -> ${manifest.version}`,
        onProgress: (received) => {
          link.seen(received);
          options.onProgress?.(received, entry.size);
        },
      }).then(
        () => {
          patchBytes = entry.size;
          // No full download measured the link yet: the patch did.
          const after = known ? null : fullIsFaster(link.bytesPerSecond(), "as the patch came");
          if (after) {
            unpacking.abort();
            throw new FullIsFaster(after);
          }
        },
        (err: unknown) => {
          unpacking.abort();
          throw err;
        },
      ),
      codecIntoNewFile(
        options.format,
        "decompress",
        options.cached,
        files.fromTar,
        `unpack ${options.cached}`,
        {
          signal: unpacking.signal,
        },
      ).then(() => {
        unpackSeconds = (performance.now() - started) / 1000;
      }),
    ]);
    if (downloaded.status === "rejected") throw downloaded.reason;
    if (unpacked.status === "rejected") throw unpacked.reason;
    const rebuildStarted = performance.now();
    // zstd -d --long=W also caps the window the decoder accepts: memory stays bounded by it.
    const patched = spawnFilter(
      "zstd",
      ["-d", "-q", `--long=${entry.windowLog}`, `--patch-from=${files.fromTar}`, "-c", files.patch],
      null,
      `apply delta ${origin.version} -> ${manifest.version}`,
      { largeBuffers: true },
    );
    await chainCodecIntoNewFile(patched, options.format, "compress", files.rebuilt, `compress ${what}`);
    await rm(files.fromTar, { force: true });
    const rebuilt = await sha256File(files.rebuilt);
    // Compressed here as the builder compresses, the file usually comes out byte for byte the
    // signed artifact: its digest then proves it whole. Otherwise (another zstd or pigz
    // version) the tar inside is checked against the signed manifest's rootfs.tarSha256, which a
    // cached file that no longer unpacks to the tar it was pulled as fails as well.
    if (`sha256:${rebuilt.hex}` !== artifact.digest) {
      const unpacked = await codecFilter(
        options.format,
        "decompress",
        createReadStream(files.rebuilt, { highWaterMark: 1 << 20 }),
        `check ${what}`,
      );
      const tar = hashTap();
      await Promise.all([
        pipeline(unpacked.output, tar, new Writable({ write: (_c, _e, next) => next() })),
        unpacked.done,
      ]);
      if (tar.hex() !== manifest.rootfs.tarSha256 || tar.size !== manifest.rootfs.tarSize) {
        throw new Error(
          `the patched tar has sha256:${tar.hex()} (${tar.size} bytes), the signed manifest says ${manifest.rootfs.tarSha256} (${manifest.rootfs.tarSize})`,
        );
      }
    }
    await cleanup(false);
    // What rebuilding cost, download aside: the unpack, then everything after both were done.
    const rebuildSeconds = unpackSeconds + (performance.now() - rebuildStarted) / 1000;
    await recordRebuildSpeed(paths.dest, options.format, manifest.rootfs.tarSize / rebuildSeconds).catch(
      () => {},
    );
    return {
      route: "delta",
      outcome: {
        rebuilt: files.rebuilt,
        local: { digest: `sha256:${rebuilt.hex}`, size: rebuilt.size },
        fromVersion: origin.version,
        transferred: entry.size,
      },
    };
  } catch (err) {
    await cleanup(true);
    note(
      err instanceof FullIsFaster
        ? err.message
        : `delta from ${origin.version} failed (${errorMessage(err)}); downloading the full artifact`,
    );
    return { route: "full", patchBytes };
  }
}
