import { mkdir, rename, rm, rmdir, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import semver from "semver";
import { writeFileAtomic } from "../../common/atomic.js";
import { parseDigest, sha256Hex } from "../../common/digest.js";
import { ExitCode, UserError } from "../../common/errors.js";
import { type Format, MAX_MANIFEST_BYTES, type Manifest, parseManifest } from "../../common/manifest.js";
import { type CachePaths, cachePaths, lockCacheFile, readOrigin, removeStalePartials } from "./cache.js";
import { DigestMismatch, DownloadInterrupted, downloadBlob } from "./download.js";
import { type RegistryClient, templatePath } from "./http.js";
import { manifestPath, type TemplateRef } from "./ref.js";

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
  const bytes = await response.buffer(MAX_MANIFEST_BYTES + 1);
  if (bytes.length > MAX_MANIFEST_BYTES) throw new UserError(`${what}: manifest is larger than 1 MiB`);
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
        : ref.kind === "range" && !semver.satisfies(manifest.version, ref.ref, { includePrerelease: true })
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
  await mkdir(options.dest, { recursive: true });
  const fileName = options.fileName?.(manifest, options.format);
  const paths = cachePaths(options.dest, manifest.name, options.format, hex, fileName);
  await mkdir(paths.stateDir, { recursive: true });
  const result: PullResult = {
    name: manifest.name,
    version: manifest.version,
    format: options.format,
    digest: artifact.digest,
    size: artifact.size,
    path: paths.final,
    upToDate: false,
  };

  const release = await lockCacheFile(paths);
  let failed = false;
  try {
    return await pullLocked(client, ref, options, { bytes, signature, verified, paths, result });
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
    bytes,
    signature,
    verified,
    paths,
    result,
  }: { bytes: Buffer; signature: Buffer | null; verified: string; paths: CachePaths; result: PullResult },
): Promise<PullResult> {
  const what = `${result.name}@${result.version}`;
  const artifact = { digest: result.digest, size: result.size };
  const origin = await readOrigin(paths.origin);
  const present = await stat(paths.final).catch(() => null);
  if (origin?.digest === artifact.digest && present?.size === artifact.size) {
    return { ...result, upToDate: true };
  }

  await removeStalePartials(paths);
  try {
    await downloadBlob(client, {
      digest: artifact.digest,
      size: artifact.size,
      partial: paths.partial,
      what,
      onProgress: (received) => options.onProgress?.(received, artifact.size),
    });
  } catch (err) {
    // A broken connection keeps its partial file for the next attempt to resume; anything
    // else (refused, not found, mismatch) leaves nothing behind.
    if (!(err instanceof DownloadInterrupted)) await rm(paths.partial, { force: true });
    throw err;
  }
  await rename(paths.partial, paths.final);
  // A file name that carries the version (Proxmox's) leaves the previous version's file behind.
  if (origin?.file && origin.file !== basename(paths.final)) {
    await rm(join(options.dest, basename(origin.file)), { force: true });
  }
  await writeFileAtomic(paths.manifest, bytes);
  if (signature) await writeFileAtomic(paths.signature, signature);
  else await rm(paths.signature, { force: true });
  await writeFileAtomic(
    paths.origin,
    `${JSON.stringify(
      {
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
      },
      null,
      2,
    )}\n`,
  );
  return result;
}

/** The manifest's detached signature, when the registry has one (kept for later verification). */
async function fetchSignature(client: RegistryClient, name: string, version: string): Promise<Buffer | null> {
  return client.getOptional(templatePath(name, version, "signature"), `${name}@${version}`, 64 * 1024);
}
