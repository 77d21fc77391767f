import { parseDigest } from "../../common/digest.js";
import { type Artifact, type Format, type Manifest, parseManifest } from "../../common/manifest.js";
import { isTag } from "../../common/names.js";
import { allowed } from "../auth.js";
import { sendStream } from "../body.js";
import { type Ctx, deps } from "../context.js";
import { notFound } from "../errors.js";
import { keys, parseTemplateKey } from "../keys.js";

/**
 * What the compatibility routes (OpenVZ /precreated/, Proxmox /aplinfo.dat) share: which
 * templates exist, which version of each a channel serves, and sending an artifact the way
 * wget -N and pveam expect (Last-Modified, Content-Length, HEAD, If-Modified-Since).
 *
 * Channels, like vztmpl-dl's extra repositories (`.../precreated/beta`): the default channel
 * serves each template's newest non-pre-release version; `beta` the newest version including
 * pre-releases (or the template's `beta` tag when it has one); any other channel name is a tag,
 * and serves the templates carrying that tag at the version it points to.
 */
export type Channel = string | null;

export interface Chosen {
  name: string;
  version: string;
  manifest: Manifest;
  /** The version's `created`, whole seconds (HTTP dates have no fractions). */
  lastModified: Date;
}

/** Manifests never change, so parsed ones are kept by key (and size, in case of delete + push). */
const manifestCache = new Map<string, Manifest>();

async function readManifest(c: Ctx, name: string, version: string): Promise<Manifest | null> {
  const key = keys.manifest(name, version);
  const bytes = await deps(c).storage.getObject(key);
  if (!bytes) return null;
  const id = `${key}\u0000${bytes.length}`;
  let manifest = manifestCache.get(id);
  if (!manifest) {
    manifest = parseManifest(bytes, key);
    if (manifestCache.size > 20_000) manifestCache.clear();
    manifestCache.set(id, manifest);
  }
  return manifest;
}

/** Names of all templates with at least one version that the caller may pull, sorted. */
export async function pullableTemplates(c: Ctx): Promise<string[]> {
  const names = new Set<string>();
  for await (const obj of deps(c).storage.list(keys.templates)) {
    const parsed = parseTemplateKey(obj.key);
    if (parsed?.kind === "manifest") names.add(parsed.name);
  }
  const principal = c.get("principal");
  const config = c.get("config");
  return [...names].filter((n) => allowed(principal, "pull", n, config)).sort();
}

/** The version `channel` serves for `name`, or null when it serves none. */
export async function chooseVersion(c: Ctx, name: string, channel: Channel): Promise<Chosen | null> {
  const { storage, index } = deps(c);
  let version: string | null = null;
  if (channel !== null) {
    const tag = await storage.getObject(keys.tag(name, channel));
    if (tag) version = tag.toString("utf8").trim();
    else if (channel !== "beta") return null;
  }
  if (version === null) {
    const { entries } = await index.list(name);
    const pick = entries.find((e) => channel === "beta" || e.version.prerelease.length === 0);
    version = pick?.version.version ?? null;
  }
  if (version === null) return null;
  return exactVersion(c, name, version);
}

/** One exact version, or null when it does not exist. */
export async function exactVersion(c: Ctx, name: string, version: string): Promise<Chosen | null> {
  const manifest = await readManifest(c, name, version);
  if (!manifest) return null;
  const created = Math.floor(Date.parse(manifest.created) / 1000) * 1000;
  return { name, version, manifest, lastModified: new Date(created) };
}

export function channelParam(raw: string | undefined): Channel {
  if (raw === undefined) return null;
  if (!isTag(raw)) throw notFound("CHANNEL_UNKNOWN", `no channel ${JSON.stringify(raw)}`);
  return raw;
}

const CONTENT_TYPES: Record<Format, string> = {
  "tar.gz": "application/gzip",
  "tar.xz": "application/x-xz",
  "tar.zst": "application/zstd",
};

/**
 * Sends an artifact's blob: GET streams it, HEAD answers the same headers without a body
 * (wget --spider), and If-Modified-Since / If-None-Match answer 304 (wget -N, caches).
 */
export async function sendArtifact(c: Ctx, artifact: Artifact, lastModified: Date): Promise<Response> {
  const { storage, metrics } = deps(c);
  const hex = parseDigest(artifact.digest)!;
  const etag = `"${artifact.digest}"`;
  c.header("Last-Modified", lastModified.toUTCString());
  c.header("ETag", etag);
  c.header("Content-Type", CONTENT_TYPES[artifact.format]);
  // The file behind a name changes when a newer version is pushed: caches must revalidate.
  c.header("Cache-Control", "no-cache");
  if (notModified(c, etag, lastModified)) return c.body(null, 304);
  c.header("Content-Length", String(artifact.size));
  if (c.req.method === "HEAD") return c.body(null, 200);
  const stream = await storage.readBlob(hex);
  if (!stream) throw notFound("BLOB_UNKNOWN", `blob ${artifact.digest} does not exist`);
  return sendStream(c, stream, 200, (n) => {
    metrics.bytesServed += n;
  });
}

/** Sends a small generated or stored document with the same conditional handling. */
export function sendSmall(
  c: Ctx,
  body: Uint8Array,
  contentType: string,
  lastModified: Date | null,
  etag?: string,
): Response {
  c.header("Content-Type", contentType);
  c.header("Cache-Control", "no-cache");
  if (lastModified) c.header("Last-Modified", lastModified.toUTCString());
  if (etag) c.header("ETag", etag);
  if (notModified(c, etag, lastModified)) return c.body(null, 304);
  c.header("Content-Length", String(body.length));
  if (c.req.method === "HEAD") return c.body(null, 200);
  return c.body(new Uint8Array(body), 200);
}

/** RFC 9110: If-None-Match wins over If-Modified-Since when both are sent. */
function notModified(c: Ctx, etag: string | undefined, lastModified: Date | null): boolean {
  const inm = c.req.header("if-none-match");
  if (inm !== undefined) {
    return etag !== undefined && inm.split(",").some((t) => t.trim().replace(/^W\//, "") === etag);
  }
  const ims = c.req.header("if-modified-since");
  if (ims === undefined || lastModified === null) return false;
  const since = Date.parse(ims);
  return !Number.isNaN(since) && lastModified.getTime() <= since;
}
