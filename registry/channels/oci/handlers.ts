import { isSha256Hex } from "../../../common/digest.js";
import { CodedError } from "../../../common/error-codes.js";
import { sendBlob } from "../../handlers/blobs.js";
import { type Ctx, deps } from "../../http/context.js";
import { OciError } from "./errors.js";
import { MEDIA, type OciDocument } from "./image.js";
import type { Repo } from "./multiarch.js";
import { findDigest, indexOfTag, repositories, tagsOf } from "./repo.js";

/**
 * The /v2 pull and content-discovery routes (distribution-spec v1.1). The caller's right to
 * pull the repository is checked by the router (index.ts) before these run.
 */

/** `sha256:<hex>`; another algorithm is a digest we never serve, a malformed one a 400. */
function digestHex(raw: string, unknown: () => OciError): string {
  const m = /^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/.exec(raw);
  if (!m) throw new OciError("DIGEST_INVALID", `${JSON.stringify(raw)} is not a digest (sha256:<64 hex>)`);
  if (m[1] !== "sha256" || !isSha256Hex(m[2]!)) throw unknown();
  return m[2]!;
}

/** Media types the client's Accept header lists (parameters and q-values aside); empty: any. */
function accepted(c: Ctx): string[] {
  return (c.req.header("accept") ?? "")
    .split(",")
    .map((t) => t.split(";")[0]!.trim().toLowerCase())
    .filter((t) => t !== "");
}

function sendDocument(c: Ctx, d: OciDocument): Response {
  c.header("Content-Type", d.mediaType);
  c.header("Docker-Content-Digest", `sha256:${d.hex}`);
  c.header("ETag", `"sha256:${d.hex}"`);
  c.header("Content-Length", String(d.bytes.length));
  if (c.req.method === "HEAD") return c.body(null, 200);
  return c.body(new Uint8Array(d.bytes), 200);
}

/**
 * GET/HEAD /v2/<repo>/manifests/<tag|digest>. A tag answers the image index when the client
 * accepts it (or names no type), else the gzip image manifest when it accepts OCI manifests;
 * a digest answers that exact document whatever the Accept header says.
 */
export async function getManifest(c: Ctx, repo: Repo, ref: string): Promise<Response> {
  const unknown = () => new OciError("MANIFEST_UNKNOWN", `${repo.path} has no manifest ${ref}`);
  if (ref.includes(":")) {
    const hex = digestHex(ref, unknown);
    const found = await findDigest(c, repo, hex);
    if (found?.kind !== "document" || found.doc.mediaType === MEDIA.config) throw unknown();
    return sendDocument(c, found.doc);
  }
  const { index, first } = await indexOfTag(c, repo, ref);
  const types = accepted(c);
  const any = types.length === 0 || types.includes("*/*") || types.includes("application/*");
  if (any || types.includes(MEDIA.index)) return sendDocument(c, index);
  if (types.includes(MEDIA.manifest)) return sendDocument(c, first);
  throw new OciError(
    "MANIFEST_UNKNOWN",
    `${repo.path}:${ref} is served as ${MEDIA.index} or ${MEDIA.manifest}; the Accept header names neither`,
  );
}

/** GET/HEAD /v2/<repo>/blobs/<digest>: a layer (the artifact, with ranges) or a derived config. */
export async function getBlob(c: Ctx, repo: Repo, raw: string): Promise<Response> {
  const unknown = () => new OciError("BLOB_UNKNOWN", `${repo.path} has no blob ${raw}`);
  const hex = digestHex(raw, unknown);
  const found = await findDigest(c, repo, hex);
  if (!found) throw unknown();
  c.header("Docker-Content-Digest", `sha256:${hex}`);
  if (found.kind === "document") {
    c.header("Content-Type", "application/octet-stream");
    c.header("ETag", `"sha256:${hex}"`);
    c.header("Content-Length", String(found.doc.bytes.length));
    if (c.req.method === "HEAD") return c.body(null, 200);
    return c.body(new Uint8Array(found.doc.bytes), 200);
  }
  const info = await deps(c).store.blobs.stat(hex);
  if (!info) throw unknown();
  try {
    return await sendBlob(c, hex, info);
  } catch (err) {
    // The blob went between the stat and the read (a version deleted meanwhile).
    if (err instanceof CodedError && err.code === "BLOB_UNKNOWN") throw unknown();
    throw err;
  }
}

/** `?n=&last=` as the spec has them: at most n entries after `last`, with a Link to the next page. */
function paginate(c: Ctx, items: string[], path: string): string[] {
  const nRaw = c.req.query("n");
  const last = c.req.query("last");
  let n: number | null = null;
  if (nRaw !== undefined) {
    n = Number(nRaw);
    if (!/^\d{1,7}$/.test(nRaw))
      throw new OciError("PAGINATION_NUMBER_INVALID", `n=${nRaw} is not a whole number`);
  }
  const after = last === undefined ? items : items.filter((t) => t > last);
  if (n === null || after.length <= n) return after;
  const page = after.slice(0, n);
  if (page.length > 0) {
    const next = `${path}?n=${n}&last=${encodeURIComponent(page[page.length - 1]!)}`;
    c.header("Link", `<${next}>; rel="next"`);
  }
  return page;
}

/** GET /v2/<repo>/tags/list. */
export async function getTags(c: Ctx, repo: Repo): Promise<Response> {
  const tags = paginate(c, await tagsOf(c, repo), `/v2/${repo.path}/tags/list`);
  c.header("Cache-Control", "no-cache");
  return c.json({ name: repo.path, tags });
}

/** GET /v2/_catalog: the repositories the caller may pull. */
export async function getCatalog(c: Ctx): Promise<Response> {
  const repos = paginate(c, await repositories(c), "/v2/_catalog");
  c.header("Cache-Control", "no-cache");
  return c.json({ repositories: repos });
}

/**
 * GET /v2/<repo>/referrers/<digest>: templar images have no referrers (nothing is pushed over
 * /v2), so an empty image index, as the spec asks of a registry that supports the API.
 */
export async function getReferrers(c: Ctx, _repo: Repo, raw: string): Promise<Response> {
  digestHex(raw, () => new OciError("MANIFEST_UNKNOWN", `no manifest ${raw}`));
  c.header("Content-Type", MEDIA.index);
  return c.body(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.index, manifests: [] }), 200);
}
