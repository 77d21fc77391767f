import { rm } from "node:fs/promises";
import { join } from "node:path";
import semver from "semver";
import { sha256Hex } from "../common/digest.js";
import { errorMessage, UserError } from "../common/errors.js";
import { globMatch } from "../common/glob.js";
import { MAX_MANIFEST_BYTES, type Manifest, parseManifest } from "../common/manifest.js";
import { isTag, isVersion, templateNameProblem } from "../common/names.js";
import { downloadBlob } from "./download.js";
import { type RegistryClient, templatePath } from "./http.js";

/**
 * `templar mirror`: copies templates from a registry to another registry, a directory or a bucket
 * (docs/architecture.md). Bytes are copied, never made:
 * manifests as served (their digest is their identity), their signatures and the artifacts'
 * signatures as they are, blobs only after their digest checked out. A mirror run can be
 * repeated: what the destination has already is skipped, so it keeps a copy in sync.
 */

/** One version as the source serves it, with the blobs it names still to be fetched. */
export interface SourceVersion {
  name: string;
  version: string;
  /** The manifest's exact bytes (pushed as they are, so its digest stays the same). */
  bytes: Buffer;
  manifest: Manifest;
  /** Armoured detached signature of the manifest, or null when the source has none. */
  signature: Buffer | null;
  /** Armoured signatures of artifacts, by format (only the signed ones). */
  artifactSignatures: Map<string, Buffer>;
}

/** Fetches a verified blob into a local file (what targets upload or store). */
export type FetchBlob = (hex: string, size: number) => Promise<string>;

/** Where a mirror writes (one file per kind: mirror-to-registry.ts, mirror-to-storage.ts). */
export interface MirrorTarget {
  /** For messages: the URL or directory. */
  readonly display: string;
  /** The manifest bytes the destination has for this version, or null. */
  manifest(name: string, version: string): Promise<Buffer | null>;
  /**
   * Publishes a version the destination lacks: the blobs it does not have yet (through `fetchBlob`),
   * then the signatures and the manifest. Returns the number of blobs copied.
   */
  publish(source: SourceVersion, fetchBlob: FetchBlob): Promise<number>;
  /** Adds signatures the destination lacks to a version it already has. */
  addSignatures(source: SourceVersion): Promise<void>;
  setTag(name: string, tag: string, version: string): Promise<void>;
}

export interface MirrorOptions {
  /** Where blobs are downloaded before they are stored (emptied after each version). */
  workDir: string;
  /** Template names to copy (`*` and `?` as in token scopes); default all. */
  filter?: string;
  /** Copy only this many of the newest versions of each template. */
  keep?: number;
  /** Bytes of blob data fetched so far, for a progress bar. */
  onBytes?: (bytes: number) => void;
  /** Called after each version with what happened to it. */
  onVersion?: (result: VersionResult) => void;
}

export interface VersionResult {
  name: string;
  version: string;
  /** "copied": published now; "present": the destination had these exact bytes; "failed". */
  status: "copied" | "present" | "failed";
  blobs: number;
  error?: string;
}

export interface MirrorResult {
  templates: number;
  versions: VersionResult[];
  tags: { name: string; tag: string; version: string }[];
}

/** Bytes read of a signature at most (armoured signatures are a few KiB). */
const SIGNATURE_LIMIT = 64 * 1024;

interface Listing {
  tags: Record<string, string>;
  versions: { version: string }[];
}

async function catalog(source: RegistryClient): Promise<string[]> {
  const body = (await source.getJson("v1/templates", "mirror: catalog")) as {
    templates?: { name?: unknown }[];
  };
  if (!Array.isArray(body.templates))
    throw new UserError(`mirror: ${source.display} answered its catalog without a templates list`);
  return body.templates.map((t) => String(t.name));
}

/**
 * A template's versions and tags, checked before any of them becomes part of a storage key or
 * URL: a source that lists `..` as a tag must not write outside the destination's layout.
 */
async function listing(source: RegistryClient, name: string): Promise<Listing> {
  const what = `mirror ${name}`;
  const body = (await source.getJson(templatePath(name), what)) as Partial<Listing>;
  if (!Array.isArray(body.versions) || typeof body.tags !== "object" || body.tags === null)
    throw new UserError(`${what}: ${source.display} answered without versions and tags`);
  for (const { version } of body.versions) {
    if (typeof version !== "string" || !isVersion(version))
      throw new UserError(`${what}: the source lists ${JSON.stringify(version)} as a version`);
  }
  for (const [tag, version] of Object.entries(body.tags)) {
    if (!isTag(tag) || typeof version !== "string" || !isVersion(version))
      throw new UserError(`${what}: the source lists an invalid tag ${JSON.stringify(tag)}`);
  }
  return { tags: body.tags, versions: body.versions };
}

async function fetchVersion(source: RegistryClient, name: string, version: string): Promise<SourceVersion> {
  const what = `mirror ${name}@${version}`;
  const reply = await source.request("GET", templatePath(name, version), { what, idempotent: true });
  const etag = reply.header("etag");
  const bytes = await reply.buffer(MAX_MANIFEST_BYTES, `${what}: manifest`);
  // The ETag is the manifest's digest: a mismatch is a transfer gone wrong, not a new version.
  if (etag && etag.replaceAll('"', "") !== `sha256:${sha256Hex(bytes)}`)
    throw new UserError(`${what}: manifest bytes do not match the registry's digest ${etag}`);
  const manifest = parseManifest(bytes, what);
  if (manifest.name !== name || manifest.version !== version)
    throw new UserError(`${what}: the source served the manifest of ${manifest.name}@${manifest.version}`);
  // Signatures: null when the source answers 404 (not signed).
  const signature = await source.getOptional(templatePath(name, version, "signature"), what, SIGNATURE_LIMIT);
  const artifactSignatures = new Map<string, Buffer>();
  for (const artifact of manifest.artifacts) {
    const path = templatePath(name, version, "signature", artifact.format);
    const sig = await source.getOptional(path, what, SIGNATURE_LIMIT);
    if (sig) artifactSignatures.set(artifact.format, sig);
  }
  return { name, version, bytes, manifest, signature, artifactSignatures };
}

/**
 * The tags to copy: those pointing at a copied version, except a `latest` that only says what an
 * untagged registry computes anyway (the highest release): set explicitly, it would stop following.
 */
function tagsToCopy(list: Listing, copied: Set<string>): [string, string][] {
  const releases = list.versions.map((v) => v.version).filter((v) => semver.prerelease(v) === null);
  const highest = releases.sort(semver.rcompare)[0];
  return Object.entries(list.tags).filter(
    ([tag, version]) => copied.has(version) && !(tag === "latest" && version === highest),
  );
}

/**
 * Copies what `options` selects from `source` to `target`; failed versions are reported, not
 * thrown. The caller owns `options.workDir` (and removes it, also when interrupted).
 */
export async function mirror(
  source: RegistryClient,
  target: MirrorTarget,
  options: MirrorOptions,
): Promise<MirrorResult> {
  const listed = await catalog(source);
  const invalid = listed.find((n) => templateNameProblem(n) !== null);
  if (invalid !== undefined)
    throw new UserError(`mirror: ${source.display} lists ${JSON.stringify(invalid)} as a template name`);
  const names = listed.filter((n) => globMatch(options.filter ?? "*", n));
  const result: MirrorResult = { templates: names.length, versions: [], tags: [] };
  const work = options.workDir;
  let fetched = 0;
  // Downloads of the version in progress: deleted once it is published (or failed).
  const files: string[] = [];
  const fetchBlob: FetchBlob = async (hex, size) => {
    const file = join(work, hex);
    files.push(file);
    const before = fetched;
    await downloadBlob(source, {
      digest: `sha256:${hex}`,
      size,
      partial: file,
      what: `mirror blob sha256:${hex.slice(0, 12)}`,
      onProgress: (received) => {
        fetched = before + received;
        options.onBytes?.(fetched);
      },
    });
    return file;
  };
  for (const name of names) {
    const list = await listing(source, name);
    // Newest first as listed; copied oldest first, so a reader of the destination never sees
    // a newer version without the older ones it kept.
    const wanted = list.versions.slice(0, options.keep ?? list.versions.length).reverse();
    const available = new Set<string>();
    for (const { version } of wanted) {
      const done = await copyVersion(source, target, name, version, fetchBlob);
      result.versions.push(done);
      options.onVersion?.(done);
      if (done.status !== "failed") available.add(version);
      await Promise.all(files.splice(0).map((f) => rm(f, { force: true })));
    }
    for (const [tag, version] of tagsToCopy(list, available)) {
      await target.setTag(name, tag, version);
      result.tags.push({ name, tag, version });
    }
  }
  return result;
}

async function copyVersion(
  source: RegistryClient,
  target: MirrorTarget,
  name: string,
  version: string,
  fetchBlob: FetchBlob,
): Promise<VersionResult> {
  const base = { name, version, blobs: 0 };
  try {
    // parseManifest has checked every artifact digest is sha256:<64 hex> (the targets rely on it).
    const from = await fetchVersion(source, name, version);
    const have = await target.manifest(name, version);
    if (have?.equals(from.bytes)) {
      await target.addSignatures(from);
      return { ...base, status: "present" };
    }
    if (have) {
      throw new UserError(
        `mirror ${name}@${version}: ${target.display} has this version with other content (versions are immutable)`,
      );
    }
    return { ...base, status: "copied", blobs: await target.publish(from, fetchBlob) };
  } catch (err) {
    if (!(err instanceof UserError)) throw err;
    const message = errorMessage(err);
    const what = `mirror ${name}@${version}`;
    return { ...base, status: "failed", error: message.startsWith(what) ? message : `${what}: ${message}` };
  }
}
