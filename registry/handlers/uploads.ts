import { parseDigest } from "../../common/digest.js";
import { CodedError } from "../../common/error-codes.js";
import { uploadOwner } from "../auth.js";
import { countedBody } from "../http/body.js";
import { type Ctx, deps, need } from "../http/context.js";
import type { UploadState } from "../store/uploads.js";

/**
 * Resumable uploads: POST opens one, PATCH appends a chunk (`Content-Range: bytes a-b/total`,
 * or none to append at the current offset), GET tells the offset to resume from, PUT
 * `?digest=sha256:<hex>` completes (with an optional last chunk), DELETE abandons. The state
 * lives in storage, so each request may reach another replica.
 *
 * An upload belongs to the token that opened it (its owner is stored with it): any other token
 * gets the same 404 as for an id that never existed, so an id seen elsewhere (a proxy's log,
 * say) lets nobody else append to, complete, read or abort it. Anonymous callers get 401 before
 * any lookup, whatever the id.
 */
const UPLOAD_ID = /^[A-Za-z0-9._~-]{1,200}$/;

function unknown(id: string) {
  return new CodedError(
    "UPLOAD_UNKNOWN",
    `upload ${id} not found (completed, aborted, expired or opened by another token)`,
  );
}

/** Who the caller is as an upload owner (push scope checked first: anonymous callers get 401). */
function owner(c: Ctx): string {
  need(c, "push", null);
  return uploadOwner(c.get("principal"))!;
}

/** Checks push scope, then that the upload exists and the caller opened it; its state. */
async function ownedUpload(c: Ctx): Promise<UploadState & { owner: string }> {
  const who = owner(c);
  const id = c.req.param("id") ?? "";
  if (!UPLOAD_ID.test(id)) throw unknown(JSON.stringify(id));
  // Another token's upload (or one without a recorded owner) is not there for this caller.
  const state = await deps(c).store.uploads.state(id, who);
  if (!state) throw unknown(id);
  return { ...state, owner: who };
}

function describe(c: Ctx, state: UploadState, status: 200 | 202): Response {
  c.header("Location", `/v1/uploads/${state.id}`);
  c.header("Upload-Offset", String(state.offset));
  c.header("Range", `0-${Math.max(0, state.offset - 1)}`);
  return c.json({ id: state.id, offset: state.offset, started: state.started.toISOString() }, status);
}

export async function createUpload(c: Ctx): Promise<Response> {
  const state = await deps(c).store.uploads.create(owner(c));
  return describe(c, state, 202);
}

export async function uploadStatus(c: Ctx): Promise<Response> {
  const state = await ownedUpload(c);
  c.header("Cache-Control", "no-store");
  return describe(c, state, 200);
}

export async function patchUpload(c: Ctx): Promise<Response> {
  const upload = await ownedUpload(c);
  const state = await appendChunk(c, upload);
  return describe(c, state, 202);
}

export async function completeUpload(c: Ctx): Promise<Response> {
  need(c, "push", null);
  const digest = c.req.query("digest") ?? "";
  const hex = parseDigest(digest);
  if (!hex)
    throw new CodedError("DIGEST_INVALID", `?digest= must be sha256:<64 hex>, got ${JSON.stringify(digest)}`);
  const upload = await ownedUpload(c);
  const hasBody =
    c.req.header("content-range") !== undefined || Number(c.req.header("content-length") ?? 0) > 0;
  if (hasBody) await appendChunk(c, upload);
  const { size } = await deps(c).store.uploads.complete(upload.id, upload.owner, hex);
  c.header("Location", `/v1/blobs/sha256:${hex}`);
  c.header("ETag", `"sha256:${hex}"`);
  return c.json({ digest: `sha256:${hex}`, size }, 201);
}

export async function abortUpload(c: Ctx): Promise<Response> {
  const { id, owner: who } = await ownedUpload(c);
  await deps(c).store.uploads.abort(id, who);
  return c.body(null, 204);
}

/** A chunk without Content-Range goes where the upload stood when its owner was checked. */
async function appendChunk(c: Ctx, upload: UploadState & { owner: string }): Promise<UploadState> {
  const { store, metrics } = deps(c);
  const header = c.req.header("content-range");
  const length = c.req.header("content-length");
  let start: number;
  let expectedLength: number | null = length === undefined ? null : Number(length);
  if (header !== undefined) {
    const range = parseContentRange(header);
    if (!range) {
      throw new CodedError(
        "CONTENT_RANGE_INVALID",
        `Content-Range ${JSON.stringify(header)}: expected "bytes <start>-<end>/<total|*>"`,
      );
    }
    if (expectedLength !== null && expectedLength !== range.end - range.start + 1) {
      throw new CodedError(
        "CONTENT_RANGE_INVALID",
        `Content-Range ${header} spans ${range.end - range.start + 1} bytes but Content-Length is ${expectedLength}`,
      );
    }
    start = range.start;
    expectedLength = range.end - range.start + 1;
  } else {
    start = upload.offset;
  }
  let received = 0;
  const body = countedBody(c, (n) => {
    received += n;
    metrics.bytesReceived += n;
  });
  const state = await store.uploads.append(upload.id, upload.owner, start, body);
  if (expectedLength !== null && received !== expectedLength) {
    throw new CodedError(
      "CONTENT_RANGE_INVALID",
      `chunk announced ${expectedLength} bytes, ${received} arrived; resume at ${state.offset}`,
    );
  }
  return state;
}

/** `bytes a-b/total`, `bytes a-b/*` or OCI's bare `a-b`; end >= start. */
export function parseContentRange(
  header: string,
): { start: number; end: number; total: number | null } | null {
  const m = /^(?:bytes[ =])?\s*(\d+)-(\d+)(?:\/(\d+|\*))?\s*$/.exec(header.trim());
  if (!m) return null;
  const start = Number(m[1]);
  const end = Number(m[2]);
  const total = m[3] === undefined || m[3] === "*" ? null : Number(m[3]);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start) return null;
  if (total !== null && end >= total) return null;
  return { start, end, total };
}
