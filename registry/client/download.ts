import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { type FileHandle, open, rm, stat } from "node:fs/promises";
import { parseDigest } from "../../common/digest.js";
import { ExitCode, errorMessage, UserError } from "../../common/errors.js";
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

const BATCH_BYTES = 1 << 20;

/**
 * Writes a body's chunks to the file in batches (one writev per MiB, one write in flight while
 * the next batch fills: 64 KiB writes awaited one by one ran at half the speed), and hashes a
 * batch once it is on disk, so the hash always covers exactly the bytes in the file.
 */
class BatchWriter {
  private batch: Buffer[] = [];
  private batchBytes = 0;
  private pending: Promise<void> = Promise.resolve();
  private written = 0;
  /** The write error, if any: kept here so the pending promise never rejects unobserved. */
  failed: UserError | null = null;

  constructor(
    private readonly file: FileHandle,
    private readonly hash: Hash,
    private readonly path: string,
    private readonly onWritten: (written: number) => void,
  ) {}

  async push(chunk: Buffer): Promise<void> {
    this.batch.push(chunk);
    this.batchBytes += chunk.length;
    if (this.batchBytes >= BATCH_BYTES) await this.flush();
  }

  async flush(): Promise<void> {
    await this.settle();
    const buffers = this.batch;
    const bytes = this.batchBytes;
    this.batch = [];
    this.batchBytes = 0;
    if (bytes === 0) return;
    this.pending = this.file.writev(buffers).then(
      ({ bytesWritten }) => {
        if (bytesWritten !== bytes) {
          this.failed = new UserError(
            `cannot write ${this.path}: short write (${bytesWritten} of ${bytes} bytes)`,
          );
          return;
        }
        for (const b of buffers) this.hash.update(b);
        this.written += bytes;
        this.onWritten(this.written);
      },
      (err: unknown) => {
        this.failed = new UserError(`cannot write ${this.path}: ${errorMessage(err)}`);
      },
    );
  }

  /** Waits for the write in flight; throws its error. Batches not yet flushed stay unwritten. */
  async settle(): Promise<void> {
    await this.pending;
    if (this.failed) throw this.failed;
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
    let writer: BatchWriter | null = null;
    let response: Reply | null = null;
    try {
      // Not retried inside request(): this loop retries, resuming from what arrived.
      response = await client.request("GET", `v1/blobs/${digest}`, { what, headers });
      let mode: "a" | "w" = "w";
      if (received > 0 && response.status === 200) {
        // The registry ignored the range (or If-Range did not match): start over.
        hash = createHash("sha256");
        received = 0;
      } else if (response.status === 206) {
        const start = /^bytes (\d+)-/.exec(response.header("content-range") ?? "")?.[1];
        if (Number(start) !== received) {
          response.discard();
          throw new UserError(`${what}: registry answered a range from byte ${start}, asked for ${received}`);
        }
        mode = "a";
      }
      file = await open(partial, mode).catch((err) => {
        throw new UserError(`${what}: cannot write ${partial}: ${errorMessage(err)}`);
      });
      const base = received;
      writer = new BatchWriter(file, hash, partial, (written) => {
        received = base + written;
        options.onProgress?.(received);
      });
      let arrived = base;
      for await (const chunk of response.body as AsyncIterable<Buffer>) {
        arrived += chunk.length;
        if (arrived > size) {
          throw new DigestMismatch(`${what}: registry sent more than the ${size} bytes the manifest names`);
        }
        await writer.push(chunk);
      }
      await writer.flush();
      await writer.settle();
      if (received < size) throw Object.assign(new Error("connection closed early"), { code: "short body" });
    } catch (err) {
      // What arrived before the cut is a prefix of the blob (the final digest check vouches
      // for it): write it too, so the next attempt resumes after it.
      if (!(err instanceof DigestMismatch)) await writer?.flush().catch(() => {});
      await writer?.settle().catch(() => {});
      if (err instanceof DigestMismatch) {
        await file?.close().catch(() => {});
        file = null;
        await rm(partial, { force: true });
        throw err;
      }
      if (writer?.failed) throw writer.failed;
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
        // On disk before it is renamed into place (a crash must not leave a hollow template).
        if (received === size) await file.sync().catch(() => {});
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
