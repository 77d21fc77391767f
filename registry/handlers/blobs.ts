import { isSha256Hex } from "../../common/digest.js";
import { CodedError } from "../../common/error-codes.js";
import { countedBody, sendStream } from "../http/body.js";
import { type Ctx, deps, mayReadBlob, need } from "../http/context.js";
import type { ByteRange } from "../storage/driver.js";

/** `sha256:<hex>` from the path; anything else is a 400. */
export function digestParam(c: Ctx): string {
  const raw = c.req.param("digest") ?? "";
  const hex = raw.startsWith("sha256:") ? raw.slice(7) : "";
  if (!isSha256Hex(hex))
    throw new CodedError("DIGEST_INVALID", `${JSON.stringify(raw)} is not sha256:<64 hex>`);
  return hex;
}

/**
 * HEAD/GET /v1/blobs/sha256:{hex}: ranges, ETag and conditional requests, streamed from storage.
 * A name-scoped token reads only blobs that a template within its scope names; any other blob
 * answers the same 404 as one that does not exist (mayReadBlob).
 */
export async function getBlob(c: Ctx): Promise<Response> {
  need(c, "pull", null);
  const hex = digestParam(c);
  const info = await deps(c).store.blobs.stat(hex);
  if (!info || !(await mayReadBlob(c, hex)))
    throw new CodedError("BLOB_UNKNOWN", `blob sha256:${hex} does not exist`);
  return sendBlob(c, hex, info);
}

/**
 * Sends a stored blob the caller may read (checked before): ranges, ETag, conditional requests,
 * HEAD, or the S3 redirect. /v1/blobs and the OCI channel's blobs share it.
 */
export async function sendBlob(
  c: Ctx,
  hex: string,
  info: { size: number; modified: Date },
): Promise<Response> {
  const { store, metrics } = deps(c);
  const etag = `"sha256:${hex}"`;
  c.header("ETag", etag);
  c.header("Accept-Ranges", "bytes");
  c.header("Cache-Control", "public, max-age=31536000, immutable");
  c.header("Last-Modified", info.modified.toUTCString());
  c.header("Content-Type", "application/octet-stream");
  if (etagMatches(c.req.header("if-none-match"), etag)) return c.body(null, 304);
  if (c.req.method === "GET") {
    // S3 with redirects on: the client gets the bytes (and its Range) straight from the bucket.
    const location = await store.blobs.downloadUrl(hex);
    if (location) return c.redirect(location, 307);
  }

  let range: ByteRange | undefined;
  const rangeHeader = c.req.header("range");
  const ifRange = c.req.header("if-range");
  // If-Range with another validator means "send the whole thing".
  if (rangeHeader && (ifRange === undefined || ifRangeHolds(ifRange, etag, info.modified))) {
    const parsed = parseRange(rangeHeader, info.size);
    if (parsed === "unsatisfiable") {
      throw new CodedError("RANGE_INVALID", `range ${rangeHeader} is outside the blob (${info.size} bytes)`, {
        "Content-Range": `bytes */${info.size}`,
      });
    }
    range = parsed ?? undefined;
  }
  const length = range ? range.end - range.start + 1 : info.size;
  c.header("Content-Length", String(length));
  if (range) c.header("Content-Range", `bytes ${range.start}-${range.end}/${info.size}`);
  const status = range ? 206 : 200;
  if (c.req.method === "HEAD" || length === 0) return c.body(null, status);
  const stream = await store.blobs.read(hex, range);
  if (!stream) throw new CodedError("BLOB_UNKNOWN", `blob sha256:${hex} does not exist`);
  return sendStream(c, stream, status, (n) => {
    metrics.bytesServed += n;
  });
}

/** PUT /v1/blobs/sha256:{hex}: monolithic upload, digest checked while streaming. */
export async function putBlob(c: Ctx): Promise<Response> {
  need(c, "push", null);
  const hex = digestParam(c);
  const { store, metrics } = deps(c);
  const body = countedBody(c, (n) => {
    metrics.bytesReceived += n;
  });
  const { size, created } = await store.blobs.put(hex, body);
  c.header("Location", `/v1/blobs/sha256:${hex}`);
  c.header("ETag", `"sha256:${hex}"`);
  return c.json({ digest: `sha256:${hex}`, size }, created ? 201 : 200);
}

/** If-Range: our strong ETag, or a date no older than the blob (blobs never change once written). */
function ifRangeHolds(ifRange: string, etag: string, modified: Date): boolean {
  if (ifRange.startsWith('"') || ifRange.startsWith("W/")) return ifRange === etag;
  const date = Date.parse(ifRange);
  return !Number.isNaN(date) && date >= Math.floor(modified.getTime() / 1000) * 1000;
}

export function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === "*") return true;
  return header.split(",").some((t) => t.trim().replace(/^W\//, "") === etag);
}

/**
 * One `bytes=` range (RFC 9110): `a-b`, `a-`, `-n`. Several ranges are answered with the
 * whole blob (allowed; nobody we serve asks for multipart). Null: ignore the header.
 */
export function parseRange(header: string, size: number): ByteRange | null | "unsatisfiable" {
  const m = /^bytes=\s*(\d*)\s*-\s*(\d*)\s*$/.exec(header.trim());
  if (!m) return null;
  const [, a, b] = m as unknown as [string, string, string];
  if (a === "" && b === "") return null;
  if (a === "") {
    const n = Number(b);
    if (n === 0) return "unsatisfiable";
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(a);
  if (start >= size) return "unsatisfiable";
  const end = b === "" ? size - 1 : Math.min(Number(b), size - 1);
  if (end < start) return null;
  return { start, end };
}
