import { parseDigest } from "../../common/digest.js";
import { CodedError } from "../../common/error-codes.js";
import { contentTypeOf } from "../../common/formats.js";
import type { Artifact, Manifest } from "../../common/manifest.js";
import { isTag } from "../../common/names.js";
import { visibleCatalog } from "../handlers/templates.js";
import { sendStream } from "../http/body.js";
import { type Ctx, deps } from "../http/context.js";

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

/** Names of all templates with at least one version that the caller may pull, sorted. */
export async function pullableTemplates(c: Ctx): Promise<string[]> {
  return (await visibleCatalog(c)).map((t) => t.name);
}

/** The version `channel` serves for `name`, or null when it serves none. */
export async function chooseVersion(c: Ctx, name: string, channel: Channel): Promise<Chosen | null> {
  const { store } = deps(c);
  let version: string | null = null;
  if (channel !== null) {
    version = await store.tags.get(name, channel);
    if (version === null && channel !== "beta") return null;
  }
  if (version === null) {
    const { entries } = await store.versions.list(name);
    const pick = entries.find((e) => channel === "beta" || e.version.prerelease.length === 0);
    version = pick?.version.version ?? null;
  }
  if (version === null) return null;
  return exactVersion(c, name, version);
}

/** One exact version, or null when it does not exist. */
export async function exactVersion(c: Ctx, name: string, version: string): Promise<Chosen | null> {
  const manifest = await deps(c).store.manifests.manifest(name, version);
  if (!manifest) return null;
  const created = Math.floor(Date.parse(manifest.created) / 1000) * 1000;
  return { name, version, manifest, lastModified: new Date(created) };
}

export function channelParam(raw: string | undefined): Channel {
  if (raw === undefined) return null;
  if (!isTag(raw)) throw new CodedError("CHANNEL_UNKNOWN", `no channel ${JSON.stringify(raw)}`);
  return raw;
}

/**
 * Sends an artifact's blob: GET streams it, HEAD answers the same headers without a body
 * (wget --spider), and If-Modified-Since / If-None-Match answer 304 (wget -N, caches).
 */
export async function sendArtifact(c: Ctx, artifact: Artifact, lastModified: Date): Promise<Response> {
  const { store, metrics } = deps(c);
  const hex = parseDigest(artifact.digest)!;
  const etag = `"${artifact.digest}"`;
  c.header("Last-Modified", lastModified.toUTCString());
  c.header("ETag", etag);
  c.header("Content-Type", contentTypeOf(artifact.format));
  // The file behind a name changes when a newer version is pushed: caches must revalidate.
  c.header("Cache-Control", "no-cache");
  if (notModified(c, etag, lastModified)) return c.body(null, 304);
  c.header("Content-Length", String(artifact.size));
  if (c.req.method === "HEAD") return c.body(null, 200);
  const stream = await store.blobs.read(hex);
  if (!stream) throw new CodedError("BLOB_UNKNOWN", `blob ${artifact.digest} does not exist`);
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
