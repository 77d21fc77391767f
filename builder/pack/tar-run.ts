import { createHash } from "node:crypto";
import { writeTar } from "./tar-writer.js";
import type { XattrMap } from "./xattrs.js";

/**
 * At most `limit` chunks of `size` bytes; a chunk comes back with release() once every consumer
 * is done with it, and alloc() waits for one when all are out: that is the backpressure.
 */
export class ChunkPool {
  private readonly free: ArrayBuffer[] = [];
  private allocated = 0;
  private waiter: (() => void) | undefined;
  private cancelled = false;

  constructor(
    readonly size: number,
    private readonly limit: number,
  ) {}

  async alloc(): Promise<Buffer> {
    for (;;) {
      if (this.cancelled) throw new Error("cancelled");
      const buffer = this.free.pop();
      if (buffer) return Buffer.from(buffer);
      if (this.allocated < this.limit) {
        this.allocated++;
        return Buffer.from(new ArrayBuffer(this.size));
      }
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
    }
  }

  release(buffer: ArrayBuffer): void {
    this.free.push(buffer);
    this.wake();
  }

  /** Makes a waiting and every later alloc() throw. */
  cancel(): void {
    this.cancelled = true;
    this.wake();
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }
}

export interface TarRunResult {
  entries: number;
  size: number;
  warnings: string[];
  /** sha256 of the whole tar stream (hex). */
  sha256: string;
}

/**
 * writeTar with the stream hashed; `emit` gets each chunk with the running totals and may return
 * a promise (backpressure, or a turn of the event loop).
 */
export async function runHashedTar(options: {
  root: string;
  xattrs: XattrMap | Promise<XattrMap>;
  mtimeClamp: number | undefined;
  pool: ChunkPool;
  emit: (chunk: Buffer, bytes: number, entries: number) => Promise<void> | undefined;
}): Promise<TarRunResult> {
  const warnings: string[] = [];
  const hash = createHash("sha256");
  let bytes = 0;
  let entries = 0;
  const result = await writeTar({
    root: options.root,
    xattrs: options.xattrs,
    mtimeClamp: options.mtimeClamp,
    chunkSize: options.pool.size,
    allocChunk: () => options.pool.alloc(),
    warn: (line) => warnings.push(line),
    onEntry: (n) => {
      entries = n;
    },
    emit: (chunk) => {
      hash.update(chunk);
      bytes += chunk.length;
      return options.emit(chunk, bytes, entries);
    },
  });
  return { ...result, warnings, sha256: hash.digest("hex") };
}
