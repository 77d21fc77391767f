import { createHash } from "node:crypto";
import { writeSync } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import { getPriority, setPriority } from "node:os";
import { UserError } from "../../common/errors.js";
import { releasePendingOpens } from "./fifo.js";
import { writeTar } from "./tar-writer.js";
import type { XattrMap } from "./xattrs.js";

/** A compressor program stopped reading its fifo (EPIPE); its own exit status says why. */
export class CompressorGoneError extends UserError {}

export interface ProduceOptions {
  root: string;
  mtimeClamp: number | undefined;
  /** The tree's extended attributes (readTreeXattrs), read by the caller meanwhile. */
  xattrs: Promise<XattrMap>;
  /**
   * Fifos that compressor programs read: every chunk is written to each with blocking writes,
   * as `tar | zstd` does.
   */
  fifos?: string[];
  /**
   * Resolves once every compressor program has been started on its fifo. Writes block, so this
   * thread must not write before: a full fifo would wait for a reader that the event loop, which
   * this thread keeps busy, still has to start.
   */
  compressorsStarted?: Promise<void>;
  /**
   * Every compressor is a program that reads ahead (ProgramSpec.readsAhead): this thread then
   * writes at a lower priority (lowerThreadPriority).
   */
  yieldToCompressors?: boolean;
  /**
   * Gets every chunk of the tar stream in order (in-process compressors). `release` must be
   * called once nobody reads the chunk any more; the buffer is then reused for later chunks.
   */
  onChunk?: (chunk: Buffer, entries: number, release: () => void) => void;
  onProgress?: (bytes: number, entries: number) => void;
  chunkSize?: number;
  poolSize?: number;
}

export interface ProduceResult {
  entries: number;
  size: number;
  warnings: string[];
  /** sha256 of the whole tar stream (hex). */
  sha256: string;
}

export interface TarProduction {
  done: Promise<ProduceResult>;
  /** Stops reading the tree (after a compressor failed). */
  cancel(): Promise<void>;
}

/** The event loop gets a turn at least this often (signals, child exits, progress). */
const YIELD_MS = 50;

/**
 * Produces the deterministic tar of a tree on this thread: file reads, hashing and the writes into
 * the compressors' fifos are synchronous, so a chunk goes from the page cache to a compressor
 * without waiting for the event loop, and the pool of chunks stays one buffer (warm in cache)
 * when only programs read it. Measured against the same writer in a worker thread (which it
 * replaced): 0.10-0.14 s less wall time and 0.2 s less CPU for a Debian minbase; a worker costs
 * ~55 ms to start and its own V8 heap, and the main thread had nothing else to do.
 */
export function produceTar(options: ProduceOptions): TarProduction {
  const fifos = options.fifos ?? [];
  const consume = options.onChunk;
  if (!consume && fifos.length === 0) throw new Error("internal: no consumer for the tar stream");
  const chunkSize = options.chunkSize ?? 1 << 20;
  // Only in-process compressors keep chunks after emit; fifo writes are done when they return.
  const pool = new ChunkPool(chunkSize, consume ? (options.poolSize ?? 8) : 1);
  let cancelled = false;
  const run = async (): Promise<ProduceResult> => {
    const handles: FileHandle[] = [];
    let restorePriority: (() => void) | undefined;
    try {
      // Each open waits (in the libuv pool) for the compressor side to open its end.
      for (const handle of await Promise.all(fifos.map((f) => open(f, "w")))) handles.push(handle);
      await options.compressorsStarted;
      if (cancelled) throw new Error("cancelled");
      // After the spawns: a child would inherit the lower priority.
      if (options.yieldToCompressors) restorePriority = lowerThreadPriority();
      const fds = handles.map((h) => h.fd);
      const warnings: string[] = [];
      const hash = createHash("sha256");
      let bytes = 0;
      let entries = 0;
      let lastYield = performance.now();
      const result = await writeTar({
        root: options.root,
        xattrs: options.xattrs,
        mtimeClamp: options.mtimeClamp,
        chunkSize,
        allocChunk: () => pool.alloc(),
        warn: (line) => warnings.push(line),
        onEntry: (n) => {
          entries = n;
        },
        emit: (chunk) => {
          if (cancelled) throw new Error("cancelled");
          hash.update(chunk);
          bytes += chunk.length;
          for (const fd of fds) writeAll(fd, chunk);
          options.onProgress?.(bytes, entries);
          if (consume) consume(chunk, entries, () => pool.release(chunk.buffer as ArrayBuffer));
          else pool.release(chunk.buffer as ArrayBuffer);
          const now = performance.now();
          if (now - lastYield < YIELD_MS) return undefined;
          lastYield = now;
          return new Promise<void>((resolve) => setImmediate(resolve));
        },
      });
      return { ...result, warnings, sha256: hash.digest("hex") };
    } finally {
      restorePriority?.();
      // End of input (or failure): the compressors see EOF.
      await Promise.all(handles.splice(0).map((h) => h.close()));
    }
  };
  return {
    done: run(),
    async cancel() {
      cancelled = true;
      pool.cancel();
      // Opens still waiting for a compressor that never came.
      for (const fifo of fifos) releasePendingOpens(fifo, "writer");
    },
  };
}

/** How much nicer than the compressors the producing thread is while it writes (as `nice`). */
const PRODUCER_NICENESS = 10;

/**
 * zstd is the bottleneck (-T0 keeps every core busy), and this thread needs more CPU than GNU tar
 * would (hashing, V8), so on a machine with few cores the two compete. At a lower priority this
 * thread runs when zstd waits for input, which zstd has read jobs ahead for: `pack --formats zst`
 * measured 3-8% faster on 2 cores. Not for pigz: it keeps only a few 128 KiB blocks in flight, and
 * a producer that wakes up late starves it (gz took 14% longer, zst+gz 45%). Linux sets niceness
 * per thread, so only this one is lowered. Returns how to undo it; an unprivileged process cannot
 * raise a priority again, so its thread then stays lower.
 */
function lowerThreadPriority(): () => void {
  let before: number;
  try {
    before = getPriority(0);
    setPriority(0, Math.min(19, before + PRODUCER_NICENESS));
  } catch {
    return () => {};
  }
  return () => {
    try {
      setPriority(0, before);
    } catch {
      // EACCES without CAP_SYS_NICE: this thread stays lower (`templar pack` exits right after).
    }
  };
}

/**
 * At most `limit` chunks of `size` bytes; a chunk comes back with release() once every consumer
 * is done with it, and alloc() waits for one when all are out: that is the backpressure.
 */
class ChunkPool {
  private readonly free: ArrayBuffer[] = [];
  private allocated = 0;
  private waiter: (() => void) | undefined;
  private cancelled = false;

  constructor(
    readonly size: number,
    private readonly limit: number,
  ) {}

  /** A free chunk at once when there is one (no promise per chunk), else waits for a release. */
  alloc(): Buffer | Promise<Buffer> {
    if (this.cancelled) throw new Error("cancelled");
    const buffer = this.free.pop();
    if (buffer) return Buffer.from(buffer);
    if (this.allocated < this.limit) {
      this.allocated++;
      return Buffer.from(new ArrayBuffer(this.size));
    }
    return new Promise<void>((resolve) => {
      this.waiter = resolve;
    }).then(() => this.alloc());
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

/** Writes all of `chunk` to a blocking fd; EPIPE means the compressor is gone. */
function writeAll(fd: number, chunk: Buffer): void {
  let off = 0;
  while (off < chunk.length) {
    try {
      off += writeSync(fd, chunk, off, chunk.length - off);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EPIPE")
        throw new CompressorGoneError("a compressor stopped reading its input");
      throw err;
    }
  }
}
