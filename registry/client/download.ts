import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { type FileHandle, open, rm, stat } from "node:fs/promises";
import { parseDigest } from "../../common/digest.js";
import { ExitCode, UserError } from "../../common/errors.js";
import { connectionReason, isRetryable, type RegistryClient } from "./http.js";
import type { Reply } from "./transport.js";

/**
 * Downloads a blob into `partial`, resuming where the file (or a broken connection) left off
 * with `Range` + `If-Range: "<digest>"`, hashing exactly the bytes that reach the disk, and
 * checking size and digest at the end. On a digest mismatch the partial file is removed and a
 * UserError with exit code 3 is thrown. On any other failure the partial file is kept, so the
 * next attempt resumes; the caller decides whether to keep it.
 */
export interface DownloadOptions {
  digest: string;
  size: number;
  /** The file to write; existing bytes in it are trusted to be a prefix of the blob and re-hashed. */
  partial: string;
  onProgress?: (received: number) => void;
  what: string;
}

export class DigestMismatch extends UserError {
  constructor(message: string) {
    super(message, ExitCode.verification);
    this.name = "DigestMismatch";
  }
}

/** The connection kept failing: the partial file holds what arrived, for the next attempt. */
export class DownloadInterrupted extends UserError {
  constructor(message: string) {
    super(message, ExitCode.failure);
    this.name = "DownloadInterrupted";
  }
}

/** Hashes the bytes already in `path` (a partial download from an earlier attempt). */
async function hashPrefix(path: string, hash: Hash): Promise<number> {
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return size;
}

export async function downloadBlob(client: RegistryClient, options: DownloadOptions): Promise<void> {
  const { digest, size, partial, what } = options;
  const hex = parseDigest(digest);
  if (hex === null)
    throw new UserError(`${what}: manifest digest ${JSON.stringify(digest)} is not sha256:<hex>`);

  let hash = createHash("sha256");
  let received = 0;
  const existing = await stat(partial).catch(() => null);
  if (existing && existing.size <= size) {
    received = await hashPrefix(partial, hash);
  } else if (existing) {
    await rm(partial, { force: true });
  }
  options.onProgress?.(received);

  let failures = 0;
  let lastError = "";
  // An empty blob needs no request: its digest is checked below like any other.
  while (received < size) {
    if (failures > 0) await client.backoff(failures);
    const before = received;
    const headers: Record<string, string> = { "accept-encoding": "identity" };
    if (received > 0) {
      headers.range = `bytes=${received}-`;
      headers["if-range"] = `"${digest}"`;
    }
    let file: FileHandle | null = null;
    let response: Reply | null = null;
    try {
      // Not retried inside request(): this loop retries, resuming from what arrived.
      response = await client.request("GET", `v1/blobs/${digest}`, { what, headers });
      if (received > 0 && response.status === 200) {
        // The registry ignored the range (or If-Range did not match): start over.
        hash = createHash("sha256");
        received = 0;
        file = await open(partial, "w");
      } else if (response.status === 206) {
        const start = /^bytes (\d+)-/.exec(response.header("content-range") ?? "")?.[1];
        if (Number(start) !== received) {
          response.discard();
          throw new UserError(`${what}: registry answered a range from byte ${start}, asked for ${received}`);
        }
        file = await open(partial, "a");
      } else {
        file = await open(partial, "w");
      }
      for await (const chunk of response.body as AsyncIterable<Buffer>) {
        if (received + chunk.length > size) {
          throw new DigestMismatch(`${what}: registry sent more than the ${size} bytes the manifest names`);
        }
        await file.write(chunk);
        hash.update(chunk);
        received += chunk.length;
        options.onProgress?.(received);
      }
      if (received < size) throw Object.assign(new Error("connection closed early"), { code: "short body" });
    } catch (err) {
      if (err instanceof DigestMismatch) {
        await file?.close().catch(() => {});
        file = null;
        await rm(partial, { force: true });
        throw err;
      }
      if (!isRetryable(err)) throw err;
      lastError = connectionReason(err);
      failures = received > before ? 1 : failures + 1;
      if (failures >= client.attempts) {
        throw new DownloadInterrupted(
          `${what}: download kept failing at byte ${received} of ${size} (${lastError}); run the same command again to resume`,
        );
      }
    } finally {
      if (response && !response.body.readableEnded) response.body.destroy();
      if (file) {
        await file.sync().catch(() => {});
        await file.close().catch(() => {});
      }
    }
  }

  const actual = hash.digest("hex");
  if (actual !== hex) {
    await rm(partial, { force: true });
    throw new DigestMismatch(`${what}: downloaded bytes have sha256:${actual}, the manifest says ${digest}`);
  }
}
