import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { open, rename, rm, rmdir } from "node:fs/promises";
import { basename } from "node:path";
import { writeFileAtomic } from "../../common/atomic.js";
import { DEFAULT_MAX_WINDOW_LOG } from "../../common/delta.js";
import { parseDigest, sha256Hex } from "../../common/digest.js";
import { ExitCode, UserError } from "../../common/errors.js";
import type { Format } from "../../common/formats.js";
import { MAX_MANIFEST_BYTES, type Manifest, parseManifest } from "../../common/manifest.js";
import { inRange, type TemplateRef } from "../../common/reference.js";
import { DigestMismatch, DownloadInterrupted, downloadBlob } from "../download.js";
import { manifestPath, type RegistryClient, templatePath } from "../http.js";
import {
  type CachePaths,
  cacheFile,
  cachePaths,
  type Fingerprint,
  fingerprint,
  lockCacheFile,
  type Origin,
  readOrigin,
  removeStalePartials,
  sameFingerprint,
  stateDir,
  writeOrigin,
} from "./cache.js";
import { type DeltaMode, linkMeter, recordLinkSpeed } from "./delta-choice.js";
import { pullByDelta } from "./delta-pull.js";

export interface PullOptions {
  dest: string;
  format: Format;
  onProgress?: (received: number, total: number) => void;
  /**
   * Checks the manifest (its signature: registry/client/verify.ts) before anything is written;
   * throws to refuse it. Returns a note on how it was verified, kept in the origin record.
   */
  verify?: (fetched: FetchedManifest, signature: Buffer | null) => Promise<string>;
  /** The file name in `dest` (default `<name>.<format>`, vzctl's); e.g. Proxmox's naming. */
  fileName?: (manifest: Manifest, format: Format) => string;
  /**
   * Delta patches from the cached older version (delta-choice.ts): `auto` (default) when
   * rebuilding beats the rest of a full download, `always` whenever the registry has one.
   */
  delta?: DeltaMode;
  /** Largest zstd window (log2 bytes) of a patch this host applies (default DEFAULT_MAX_WINDOW_LOG). */
  maxWindowLog?: number;
  /** Sentences about the route taken (delta or not, and why), for the terminal. */
  onNote?: (note: string) => void;
}

export interface PullResult {
  name: string;
  version: string;
  format: Format;
  digest: string;
  size: number;
  path: string;
  /** True when the cache already held exactly this artifact and nothing was downloaded. */
  upToDate: boolean;
  /**
   * The version the cache held before when it differs from `version` but its artifact had the
   * same digest: a newer version with identical content (recorded as the version now held).
   */
  sameContentAs?: string;
  /** "delta": rebuilt from a patch against the cached older version; "full": the artifact downloaded. */
  via: "full" | "delta" | "cache";
  /** Bytes downloaded for the template (patch or artifact; 0 when up to date). */
  transferred: number;
  /** With "delta": the version the patch started from. */
  deltaFrom?: string;
  /** The file's own digest and size when it differs from the registry's artifact (recompressed here). */
  local?: { digest: string; size: number };
}

export interface FetchedManifest {
  manifest: Manifest;
  bytes: Buffer;
  digest: string;
}

/**
 * Fetches and checks the manifest a reference resolves to: its bytes must hash to the ETag the
 * registry sent, parse as a manifest, and actually be the name (and version, or range) asked for.
 */
export async function fetchManifest(client: RegistryClient, ref: TemplateRef): Promise<FetchedManifest> {
  const what = `${ref.name}@${ref.ref}`;
  const response = await client.request("GET", manifestPath(ref), {
    what,
    idempotent: true,
    headers: { accept: "application/json" },
  });
  const bytes = await response.buffer(MAX_MANIFEST_BYTES, `manifest of ${what}`);
  const digest = `sha256:${sha256Hex(bytes)}`;
  const etag = response.header("etag")?.replace(/^W\//, "").replace(/"/g, "");
  if (etag && parseDigest(etag) !== null && etag !== digest) {
    throw new DigestMismatch(`${what}: manifest bytes have ${digest}, the registry's ETag says ${etag}`);
  }
  const manifest = parseManifest(bytes, `manifest of ${what} from ${client.display}`);
  const wrong =
    manifest.name !== ref.name
      ? `names template ${manifest.name}`
      : ref.kind === "version" && manifest.version !== ref.ref
        ? `has version ${manifest.version}`
        : ref.kind === "range" && !inRange(manifest.version, ref.ref)
          ? `has version ${manifest.version}, outside the range`
          : null;
  if (wrong)
    throw new UserError(
      `${what}: the registry answered with a manifest that ${wrong}`,
      ExitCode.verification,
    );
  return { manifest, bytes, digest };
}

/** `templar pull`: resolve, download with resume, verify, and only then rename into place. */
export async function pullTemplate(
  client: RegistryClient,
  ref: TemplateRef,
  options: PullOptions,
): Promise<PullResult> {
  const fetched = await fetchManifest(client, ref);
  const { manifest, bytes } = fetched;
  const what = `${manifest.name}@${manifest.version}`;
  const signature = await fetchSignature(client, manifest.name, manifest.version);
  const verified = options.verify ? await options.verify(fetched, signature) : "not checked";
  const artifact = manifest.artifacts.find((a) => a.format === options.format);
  if (!artifact) {
    const has = manifest.artifacts.map((a) => a.format).join(", ");
    throw new UserError(`${what} has no ${options.format} artifact (it has ${has})`, ExitCode.notFound);
  }
  const hex = parseDigest(artifact.digest)!;
  const fileName = options.fileName?.(manifest, options.format);
  // Every name checked (cacheFile) before anything is created.
  const paths = cachePaths(options.dest, manifest.name, options.format, hex, fileName);
  await stateDir(options.dest, true);
  const result: PullResult = {
    name: manifest.name,
    version: manifest.version,
    format: options.format,
    digest: artifact.digest,
    size: artifact.size,
    path: paths.final,
    upToDate: false,
    via: "full",
    transferred: artifact.size,
  };

  const release = await lockCacheFile(paths);
  let failed = false;
  try {
    return await pullLocked(client, ref, options, { manifest, bytes, signature, verified, paths, result });
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    await release();
    // A first pull that failed leaves no trace (rmdir removes the state folder only when empty).
    if (failed) await rmdir(paths.stateDir).catch(() => {});
  }
}

async function pullLocked(
  client: RegistryClient,
  ref: TemplateRef,
  options: PullOptions,
  {
    manifest,
    bytes,
    signature,
    verified,
    paths,
    result,
  }: {
    manifest: Manifest;
    bytes: Buffer;
    signature: Buffer | null;
    verified: string;
    paths: CachePaths;
    result: PullResult;
  },
): Promise<PullResult> {
  const what = `${result.name}@${result.version}`;
  const artifact = { digest: result.digest, size: result.size };
  const origin = await readOrigin(paths.origin);
  // A newer version whose artifact is byte for byte the one held: said, and recorded as the
  // version held (OpenVZ keeps the file; Proxmox's file name carries the version, so it moves).
  if (origin && origin.digest === artifact.digest && origin.version !== result.version)
    result.sameContentAs = origin.version;
  const kept = origin ? await keptArtifact(paths, origin, artifact) : null;
  if (kept) {
    if (result.sameContentAs !== undefined) {
      await writeFileAtomic(paths.manifest, bytes);
      if (signature) await writeFileAtomic(paths.signature, signature);
      else await rm(paths.signature, { force: true });
      await writeOrigin(paths.origin, {
        ...origin!,
        registry: client.display,
        ref: `${ref.name}@${ref.ref}`,
        version: result.version,
        verified,
        pulled: new Date().toISOString(),
        fingerprint: kept,
      });
    } else if (!sameFingerprint(origin!.fingerprint, kept)) {
      await writeOrigin(paths.origin, { ...origin!, fingerprint: kept });
    }
    return {
      ...result,
      upToDate: true,
      via: "cache",
      transferred: 0,
      ...(origin!.local ? { local: origin!.local } : {}),
    };
  }

  await removeStalePartials(paths);
  // The older version's file: under another name with Proxmox naming (it carries the version).
  const cached = origin ? cacheFile(options.dest, origin.file ?? basename(paths.final)) : null;
  const mode = options.delta ?? "auto";
  const attempt =
    origin && cached && mode !== "never" && (await fingerprint(cached))
      ? await pullByDelta(client, {
          manifest,
          format: options.format,
          origin,
          paths,
          cached,
          mode,
          maxWindowLog: options.maxWindowLog ?? DEFAULT_MAX_WINDOW_LOG,
          ...(options.onProgress ? { onProgress: options.onProgress } : {}),
          ...(options.onNote ? { onNote: options.onNote } : {}),
        })
      : null;
  if (attempt?.route === "delta") {
    const delta = attempt.outcome;
    // The same bytes as the registry's artifact when this host's compressor made them (zstd at
    // the builder's level, typically); recorded as recompressed otherwise.
    const local = delta.local.digest === artifact.digest ? undefined : delta.local;
    await rename(delta.rebuilt, paths.final);
    return finish(
      client,
      ref,
      options,
      { manifest, bytes, signature, verified, paths, origin },
      {
        ...result,
        via: "delta",
        transferred: delta.transferred,
        deltaFrom: delta.fromVersion,
        ...(local ? { local } : {}),
      },
    );
  }
  // A patch downloaded and then left counts among the bytes this update cost.
  if (attempt?.route === "full") result.transferred += attempt.patchBytes;
  const link = linkMeter(performance.now(), artifact.size);
  try {
    await downloadBlob(client, {
      digest: artifact.digest,
      size: artifact.size,
      partial: paths.partial,
      what,
      onProgress: (received) => {
        link.seen(received);
        options.onProgress?.(received, artifact.size);
      },
    });
  } catch (err) {
    // A broken connection keeps its partial file for the next attempt to resume; anything
    // else (refused, not found, mismatch) leaves nothing behind.
    if (!(err instanceof DownloadInterrupted)) await rm(paths.partial, { force: true });
    throw err;
  }
  await rename(paths.partial, paths.final);
  // What --delta auto weighs a patch against next time (delta-choice.ts).
  await recordLinkSpeed(options.dest, client.display, link.bytes(), link.bytesPerSecond());
  return finish(client, ref, options, { manifest, bytes, signature, verified, paths, origin }, result);
}

/** After the verified file was renamed into place: the state files that describe it. */
async function finish(
  client: RegistryClient,
  ref: TemplateRef,
  options: PullOptions,
  {
    manifest,
    bytes,
    signature,
    verified,
    paths,
    origin,
  }: {
    manifest: Manifest;
    bytes: Buffer;
    signature: Buffer | null;
    verified: string;
    paths: CachePaths;
    origin: Origin | null;
  },
  result: PullResult,
): Promise<PullResult> {
  const artifact = { digest: result.digest, size: result.size };
  // Taken right after the rename (which changes ctime): what "up to date" compares next time.
  const verifiedFile = await fingerprint(paths.final);
  // A file name that carries the version (Proxmox's) leaves the previous version's file behind.
  if (origin?.file && origin.file !== basename(paths.final)) {
    await rm(cacheFile(options.dest, origin.file), { force: true });
  }
  await writeFileAtomic(paths.manifest, bytes);
  if (signature) await writeFileAtomic(paths.signature, signature);
  else await rm(paths.signature, { force: true });
  await writeOrigin(paths.origin, {
    registry: client.display,
    ref: `${ref.name}@${ref.ref}`,
    name: result.name,
    version: result.version,
    format: options.format,
    digest: artifact.digest,
    size: artifact.size,
    file: basename(paths.final),
    verified,
    pulled: new Date().toISOString(),
    ...(verifiedFile ? { fingerprint: verifiedFile } : {}),
    tarSha256: manifest.rootfs.tarSha256,
    via: result.via === "delta" ? "delta" : "full",
    ...(result.deltaFrom ? { deltaFrom: result.deltaFrom } : {}),
    ...(result.local ? { local: result.local } : {}),
  });
  return result;
}

/**
 * Whether the cache file still holds exactly the artifact its origin record says was verified
 * there; returns its current fingerprint if so. The fingerprint recorded right after
 * verification (size, inode, mtime and ctime, in ns) settles it without reading the file: any
 * write changes mtime and ctime, a replaced file has another inode, and ctime cannot be set
 * back by anyone short of changing the clock. Only when it differs (touched, copied back, or
 * an older record without one) is the file hashed, so a daily `update --all` over a cache of
 * large templates reads nothing, and a changed file is always pulled again.
 */
async function keptArtifact(
  paths: CachePaths,
  origin: Origin,
  artifact: { digest: string; size: number },
): Promise<Fingerprint | null> {
  if (origin.digest !== artifact.digest) return null;
  if ((origin.file ?? basename(paths.final)) !== basename(paths.final)) return null;
  // A file rebuilt from a delta has its own bytes (origin.local); its tar was verified then.
  const expected = origin.local ?? artifact;
  const now = await fingerprint(paths.final);
  if (!now || now.size !== expected.size) return null;
  if (sameFingerprint(origin.fingerprint, now)) return now;
  return (await hashFile(paths.final)) === expected.digest ? now : null;
}

async function hashFile(path: string): Promise<string | null> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW).catch(() => null);
  if (!handle) return null;
  try {
    const hash = createHash("sha256");
    for await (const chunk of handle.createReadStream({ highWaterMark: 1 << 20, autoClose: false })) {
      hash.update(chunk as Buffer);
    }
    return `sha256:${hash.digest("hex")}`;
  } finally {
    await handle.close();
  }
}

/** The manifest's detached signature, when the registry has one (kept for later verification). */
async function fetchSignature(client: RegistryClient, name: string, version: string): Promise<Buffer | null> {
  return client.getOptional(
    templatePath(name, version, "signature"),
    `signature of ${name}@${version}`,
    64 * 1024,
  );
}
