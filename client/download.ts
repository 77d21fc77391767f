import { createHash, type Hash } from "node:crypto";
import { constants } from "node:fs";
import { type FileHandle, open, rm } from "node:fs/promises";
import { CREATE_EXCLUSIVE } from "../common/atomic.js";
import { hashOpenFile, parseDigest } from "../common/digest.js";
import { ExitCode, errorMessage, UserError } from "../common/errors.js";
import { connectionReason, isRetryable, type RegistryClient } from "./http.js";
import type { Reply } from "./transport.js";

/**
 * Downloads a blob into `partial`, resuming where the file (or a broken connection) left off
 * with `Range` + `If-Range: "<digest>"`, hashing exactly the bytes that reach the disk, and
 * checking size and digest at the end. A partial file from an earlier run is only resumed when
 * it is a regular file of ours (partialPrefix); when the finished bytes do not match, it is
 * blamed: the download starts over from byte 0, once. A mismatch of bytes that all came from
 * the registry in this run removes the partial file and throws a UserError with exit code 3. On
 * any other failure the partial file is kept, so the next attempt resumes; the caller decides
 * whether to keep it.
 */
export interface DownloadOptions {
  digest: string;
  size: number;
  /** The file to write; existing bytes in it are taken as a prefix of the blob and re-hashed. */
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

/** Which file we write: a partial file is only ever appended to while it is still this one. */
interface FileId {
  dev: bigint;
  ino: bigint;
}

// O_NOFOLLOW everywhere: a symlink planted at the partial file's name must not make us read or
// append to its target (ELOOP instead).
const READ_NOFOLLOW = constants.O_RDONLY | constants.O_NOFOLLOW;
const APPEND_NOFOLLOW = constants.O_WRONLY | constants.O_APPEND | constants.O_NOFOLLOW;

function ours(info: { uid: bigint | number }): boolean {
  return process.getuid === undefined || Number(info.uid) === process.getuid();
}

/**
 * The partial file an earlier run left, hashed into `hash`, when it can be resumed: a regular
 * file (not a symlink), owned by this user, with one link (not a hard link to some other file),
 * no larger than the blob. Anything else at that name is removed and the download starts at 0.
 */
async function partialPrefix(
  path: string,
  size: number,
  hash: Hash,
  what: string,
): Promise<{ received: number; id: FileId } | null> {
  let handle: FileHandle;
  try {
    handle = await open(path, READ_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return null;
    if (code !== "ELOOP") throw new UserError(`${what}: cannot read ${path}: ${errorMessage(err)}`);
    await removePartial(path, what);
    return null;
  }
  try {
    const info = await handle.stat({ bigint: true });
    if (!info.isFile() || !ours(info) || info.nlink !== 1n || info.size > BigInt(size)) {
      await removePartial(path, what);
      return null;
    }
    const received = await hashOpenFile(handle, hash);
    return { received, id: { dev: info.dev, ino: info.ino } };
  } finally {
    await handle.close();
  }
}

async function removePartial(path: string, what: string): Promise<void> {
  await rm(path, { force: true }).catch((err) => {
    throw new UserError(`${what}: cannot remove ${path}: ${errorMessage(err)}`);
  });
}

/**
 * Opens the partial file for the next bytes: a fresh file is created exclusively (whatever
 * was at the name is removed first); appending reopens the very file hashed so far.
 */
async function openPartial(
  path: string,
  append: FileId | null,
  received: number,
  what: string,
): Promise<{ file: FileHandle; id: FileId }> {
  const fail = (err: unknown): never => {
    throw new UserError(`${what}: cannot write ${path}: ${errorMessage(err)}`);
  };
  if (!append) await removePartial(path, what);
  const file = await open(path, append ? APPEND_NOFOLLOW : CREATE_EXCLUSIVE, 0o644).catch(fail);
  const info = await file.stat({ bigint: true }).catch(async (err) => {
    await file.close();
    return fail(err);
  });
  if (append && (info.dev !== append.dev || info.ino !== append.ino || info.size !== BigInt(received))) {
    await file.close();
    throw new UserError(`${what}: ${path} was replaced or changed by something else during the download`);
  }
  return { file, id: { dev: info.dev, ino: info.ino } };
}

export async function downloadBlob(client: RegistryClient, options: DownloadOptions): Promise<void> {
  const { digest, size, partial, what } = options;
  const hex = parseDigest(digest);
  if (hex === null)
    throw new UserError(`${what}: manifest digest ${JSON.stringify(digest)} is not sha256:<hex>`);

  let hash = createHash("sha256");
  const prefix = await partialPrefix(partial, size, hash, what);
  // Bytes taken from an earlier run's file rather than from the registry in this run: when the
  // result does not match, they are the suspects (changed on disk, written by something else).
  let resume = prefix && prefix.received > 0 ? prefix : null;
  for (;;) {
    const { actual, usedPrefix } = await fetchRest(client, options, hash, resume);
    if (actual === hex) return;
    await rm(partial, { force: true });
    if (!usedPrefix) {
      throw new DigestMismatch(
        `${what}: downloaded bytes have sha256:${actual}, the manifest says ${digest}`,
      );
    }
    // The kept prefix was wrong: start over from byte 0, once (no prefix from now on).
    resume = null;
    hash = createHash("sha256");
  }
}

/**
 * Downloads the blob's bytes after `resume.received` (all of them without `resume`) into the
 * partial file, retrying broken connections. Returns the hex digest of the whole file, and
 * whether its start is still the earlier run's prefix (false once the registry sent it all).
 */
async function fetchRest(
  client: RegistryClient,
  options: DownloadOptions,
  hash: Hash,
  resume: { received: number; id: FileId } | null,
): Promise<{ actual: string; usedPrefix: boolean }> {
  const { digest, size, partial, what } = options;
  let received = resume?.received ?? 0;
  let id = resume?.id ?? null;
  let usedPrefix = resume !== null;
  options.onProgress?.(received);

  let failures = 0;
  let lastError = "";
  // An empty blob needs no request: its digest is checked below like any other. Its (empty)
  // partial file is still created, as the caller renames it into place.
  if (size === 0 && !id) await (await openPartial(partial, null, 0, what)).file.close();
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
      let append = received > 0;
      if (received > 0 && response.status === 200) {
        // The registry ignored the range (or If-Range did not match): start over.
        hash = createHash("sha256");
        received = 0;
        append = false;
        usedPrefix = false;
      } else if (response.status === 206) {
        const start = /^bytes (\d+)-/.exec(response.header("content-range") ?? "")?.[1];
        if (Number(start) !== received) {
          response.discard();
          throw new UserError(`${what}: registry answered a range from byte ${start}, asked for ${received}`);
        }
      }
      const opened = await openPartial(partial, append ? id : null, received, what);
      file = opened.file;
      id = opened.id;
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
  return { actual: hash.digest("hex"), usedPrefix };
}
