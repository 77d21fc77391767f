import { createHash } from "node:crypto";
import { type Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { CodedError } from "../../common/error-codes.js";
import type { ByteRange, ObjectInfo, StorageDriver } from "../storage/driver.js";
import { layout, parseBlobKey } from "./layout.js";

export interface BlobInfo {
  size: number;
  modified: Date;
}

export function digestMismatch(expected: string, actual: string): CodedError {
  return new CodedError(
    "DIGEST_INVALID",
    `digest mismatch: expected sha256:${expected}, got sha256:${actual}`,
  );
}

/**
 * A pass-through that hashes and counts, and fails instead of ending when the bytes do not hash
 * to `hex`: whatever it feeds sees a clean end only for verified bytes, so a driver's write
 * (which publishes on end and discards on error) can never publish a wrong blob.
 */
export function verifying(hex: string): Transform & { size: number } {
  const hash = createHash("sha256");
  const tap = new Transform({
    highWaterMark: 1 << 20,
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      tap.size += chunk.length;
      done(null, chunk);
    },
    flush(done) {
      const actual = hash.digest("hex");
      done(actual === hex ? null : digestMismatch(hex, actual));
    },
  }) as Transform & { size: number };
  tap.size = 0;
  return tap;
}

/** Content-addressed blobs: a blob's key is its sha256, and only verified bytes ever appear there. */
export class Blobs {
  constructor(private readonly driver: StorageDriver) {}

  async stat(hex: string): Promise<BlobInfo | null> {
    const info = await this.driver.stat(layout.blob(hex));
    return info ? { size: info.size, modified: info.modified } : null;
  }

  /** The blob or a range of it; null when absent. */
  read(hex: string, range?: ByteRange): Promise<Readable | null> {
    return this.driver.read(layout.blob(hex), range);
  }

  /** A URL to send the client to instead of streaming (S3 with redirects on), else null. */
  async downloadUrl(hex: string): Promise<string | null> {
    return (await this.driver.downloadUrl?.(layout.blob(hex))) ?? null;
  }

  /**
   * Stores `body` as blob `hex`, hashing while it streams; it becomes visible only when the digest
   * matched (DIGEST_INVALID otherwise, nothing kept). A blob already there is left as it is (its
   * bytes cannot differ), but the body is still read and checked, so a wrong one is still refused.
   */
  async put(hex: string, body: Readable): Promise<{ size: number; created: boolean }> {
    const check = verifying(hex);
    if (await this.stat(hex)) {
      await pipeline(body, check, async (source: AsyncIterable<unknown>) => {
        for await (const _ of source) {
          // drained: only the digest matters
        }
      });
      return { size: check.size, created: false };
    }
    const writer = await this.driver.write(layout.blob(hex));
    try {
      await pipeline(body, check, writer.stream);
    } catch (err) {
      await writer.done.catch(() => {});
      throw err;
    }
    await writer.done;
    return { size: check.size, created: true };
  }

  /**
   * Publishes objects that together hold verified bytes (upload pieces) as blob `hex`: joined by
   * the driver where it can, else streamed through this process.
   */
  async publish(hex: string, pieces: ObjectInfo[]): Promise<void> {
    const key = layout.blob(hex);
    if (this.driver.concat) {
      await this.driver.concat(key, pieces);
      return;
    }
    const writer = await this.driver.write(key);
    try {
      for (const piece of pieces) {
        const stream = await this.driver.read(piece.key);
        if (!stream) throw new Error(`upload piece ${piece.key} vanished`);
        await pipeline(stream, writer.stream, { end: false });
      }
      writer.stream.end();
    } catch (err) {
      writer.stream.destroy(err as Error);
      await writer.done.catch(() => {});
      throw err;
    }
    await writer.done;
  }

  delete(hex: string): Promise<void> {
    return this.driver.delete(layout.blob(hex));
  }

  async *list(): AsyncIterable<{ hex: string } & BlobInfo> {
    for await (const info of this.driver.list(layout.blobs)) {
      const hex = parseBlobKey(info.key);
      if (hex) yield { hex, size: info.size, modified: info.modified };
    }
  }
}
