import { createReadStream } from "node:fs";
import { UserError } from "../common/errors.js";
import { isRetryable, type RegistryClient, RegistryError } from "./http.js";
import type { Reply } from "./transport.js";

/**
 * Resumable blob upload (docs/http-api.md: POST /v1/uploads, PATCH chunks with Content-Range, GET tells
 * the offset to resume from, PUT ?digest= completes). When a chunk's connection breaks, we ask
 * the registry how much it kept and go on from there, so a 1 GiB push that loses its connection
 * near the end re-sends only the tail.
 */
export interface UploadOptions {
  file: string;
  size: number;
  digest: string;
  /** Bytes per PATCH; default: the client's chunkSize. */
  chunkSize?: number;
  /** Called with the bytes of this blob sent so far (may go back after a resume). */
  onProgress?: (sent: number) => void;
  what: string;
}

/** Reads the upload's offset from an answer: JSON `offset`, `Upload-Offset`, or `Range: 0-<last>`. */
export async function offsetFrom(response: Reply): Promise<number | null> {
  let fromBody: number | null = null;
  if ((response.header("content-type") ?? "").includes("json")) {
    try {
      const body = JSON.parse(await response.text()) as { offset?: unknown };
      if (typeof body.offset === "number") fromBody = body.offset;
    } catch {
      // not JSON after all: the headers may still say it
    }
  } else {
    response.discard();
  }
  if (fromBody !== null) return fromBody;
  const header = response.header("upload-offset");
  if (header !== null && /^\d+$/.test(header)) return Number(header);
  const range = response.header("range");
  if (range !== null) {
    const m = /^(?:bytes=)?0-(\d+)$/.exec(range.trim());
    if (m) return Number(m[1]) + 1;
  }
  return null;
}

/** Where the registry says the upload lives: JSON `id`, else the last segment of Location. */
async function uploadIdFrom(response: Reply): Promise<string> {
  if ((response.header("content-type") ?? "").includes("json")) {
    const body = JSON.parse(await response.text().catch(() => "{}")) as { id?: unknown; uploadId?: unknown };
    const id = body.id ?? body.uploadId;
    if (typeof id === "string" && id) return id;
  } else {
    response.discard();
  }
  const location = response.header("location");
  if (location) {
    const id = location
      .replace(/[?#].*$/, "")
      .split("/")
      .filter(Boolean)
      .pop();
    if (id) return decodeURIComponent(id);
  }
  throw new UserError("registry answered POST /v1/uploads without an upload id (no JSON id, no Location)");
}

export async function uploadBlob(client: RegistryClient, options: UploadOptions): Promise<void> {
  const { file, size, digest, what } = options;
  const chunkSize = options.chunkSize ?? client.chunkSize;
  const created = await client.request("POST", "v1/uploads", { what, headers: { "content-length": "0" } });
  const id = await uploadIdFrom(created);
  const path = `v1/uploads/${encodeURIComponent(id)}`;

  let offset = 0;
  let failures = 0;
  while (offset < size) {
    const end = Math.min(size, offset + chunkSize) - 1;
    try {
      const response = await sendChunk(client, path, file, offset, end, size, what, (sent) =>
        options.onProgress?.(offset + sent),
      );
      const reported = await offsetFrom(response);
      offset = reported ?? end + 1;
      failures = 0;
    } catch (err) {
      // 416/409: the registry's offset differs from ours (an earlier attempt landed after all).
      const offsetConflict = err instanceof RegistryError && (err.status === 416 || err.status === 409);
      if (!isRetryable(err) && !offsetConflict) throw err;
      failures++;
      if (failures >= client.attempts) {
        throw new UserError(
          `${what}: upload kept failing at byte ${offset} of ${size}: ${(err as Error).message}`,
        );
      }
      await client.backoff(failures);
      // The registry may have kept part of the chunk (or none of it): ask where to go on.
      const state = await client.request("GET", path, { what, idempotent: true });
      const reported = await offsetFrom(state);
      if (reported === null)
        throw new UserError(`${what}: registry did not say how much of the upload it has`);
      if (reported > offset) failures = 0;
      offset = reported;
      options.onProgress?.(offset);
    }
  }
  const done = await client.request("PUT", `${path}?digest=${encodeURIComponent(digest)}`, {
    what,
    headers: { "content-length": "0" },
  });
  done.discard();
}

async function sendChunk(
  client: RegistryClient,
  path: string,
  file: string,
  start: number,
  end: number,
  total: number,
  what: string,
  onSent: (sent: number) => void,
): Promise<Reply> {
  let sent = 0;
  const stream = createReadStream(file, { start, end, highWaterMark: 1 << 20 });
  stream.on("data", (chunk) => {
    sent += (chunk as Buffer).length;
    onSent(sent);
  });
  try {
    return await client.request("PATCH", path, {
      what,
      body: stream,
      headers: {
        "content-type": "application/octet-stream",
        "content-length": String(end - start + 1),
        "content-range": `bytes ${start}-${end}/${total}`,
      },
    });
  } finally {
    stream.destroy();
  }
}
