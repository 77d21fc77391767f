import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { UserError } from "../../common/errors.js";
import { writeTar } from "./tar-writer.js";
import type { XattrMap } from "./xattrs.js";

/** What the tar worker is told (workerData). */
export interface ProducerRequest {
  root: string;
  mtimeClamp: number | undefined;
  chunkSize: number;
  /** Chunks in flight at most: bounds memory and is the backpressure between reader and writers. */
  poolSize: number;
}

export type ProducerMessage =
  | { type: "chunk"; buffer: ArrayBuffer; length: number; entries: number }
  | { type: "done"; entries: number; size: number; warnings: string[] }
  | { type: "error"; message: string; user: boolean; exitCode: number };

export interface ProduceOptions {
  root: string;
  mtimeClamp: number | undefined;
  /** The tree's extended attributes (readTreeXattrs), read by the caller while the worker starts. */
  xattrs: Promise<XattrMap>;
  /**
   * Gets every chunk of the tar stream in order. `release` must be called once nobody reads the
   * chunk any more; the buffer is then reused for later chunks.
   */
  onChunk: (chunk: Buffer, entries: number, release: () => void) => void;
  chunkSize?: number;
  poolSize?: number;
}

export interface ProduceResult {
  entries: number;
  size: number;
  warnings: string[];
}

export interface TarProduction {
  done: Promise<ProduceResult>;
  /** Stops reading the tree (after a compressor failed). */
  cancel(): Promise<void>;
}

const WORKER_URL = new URL("./tar-worker.js", import.meta.url);

/**
 * Produces the deterministic tar of a tree. The reading runs in a worker thread when the compiled
 * worker script is present (the normal case: dist/); code loaded from TypeScript sources (tests
 * importing the sources directly) runs the same writer on the main thread instead.
 */
export function produceTar(options: ProduceOptions): TarProduction {
  const request: ProducerRequest = {
    root: options.root,
    mtimeClamp: options.mtimeClamp,
    chunkSize: options.chunkSize ?? 1 << 20,
    poolSize: options.poolSize ?? 8,
  };
  const workerFile = fileURLToPath(WORKER_URL);
  if (existsSync(workerFile)) return produceInWorker(workerFile, request, options);
  return produceInThread(request, options);
}

/** Structured clone turns Buffers into Uint8Arrays; the worker turns them back. */
export type XattrList = [string, [string, Uint8Array][]][];

function produceInWorker(
  workerFile: string,
  request: ProducerRequest,
  options: ProduceOptions,
): TarProduction {
  // A larger young generation: the walk makes many short-lived objects (stats, paths, headers).
  const worker = new Worker(workerFile, {
    workerData: request,
    resourceLimits: { maxYoungGenerationSizeMb: 48 },
  });
  let finished = false;
  options.xattrs.then(
    (map) => {
      if (!finished) worker.postMessage({ type: "xattrs", list: [...map] satisfies XattrList });
    },
    (err: Error) => {
      finished = true;
      void worker.terminate();
      failEarly?.(err);
    },
  );
  let failEarly: ((err: Error) => void) | undefined;
  const done = new Promise<ProduceResult>((resolve, reject) => {
    failEarly = reject;
    worker.on("message", (message: ProducerMessage) => {
      if (message.type === "chunk") {
        const buffer = message.buffer;
        options.onChunk(Buffer.from(buffer, 0, message.length), message.entries, () => {
          if (!finished) worker.postMessage({ type: "return", buffer }, [buffer]);
        });
      } else if (message.type === "done") {
        finished = true;
        void worker.terminate();
        resolve({ entries: message.entries, size: message.size, warnings: message.warnings });
      } else {
        finished = true;
        void worker.terminate();
        reject(message.user ? new UserError(message.message, message.exitCode) : new Error(message.message));
      }
    });
    worker.on("error", (err) => {
      finished = true;
      reject(err);
    });
    worker.on("exit", () => {
      if (!finished) reject(new Error("tar worker exited before it finished"));
    });
  });
  return {
    done,
    async cancel() {
      finished = true;
      await worker.terminate();
    },
  };
}

function produceInThread(request: ProducerRequest, options: ProduceOptions): TarProduction {
  const free: Buffer[] = [];
  let allocated = 0;
  let waiter: (() => void) | undefined;
  let cancelled = false;
  let entries = 0;
  const allocChunk = async (): Promise<Buffer> => {
    for (;;) {
      if (cancelled) throw new Error("cancelled");
      const buffer = free.pop();
      if (buffer) return buffer;
      if (allocated < request.poolSize) {
        allocated++;
        return Buffer.allocUnsafe(request.chunkSize);
      }
      await new Promise<void>((resolve) => {
        waiter = resolve;
      });
    }
  };
  const run = async (): Promise<ProduceResult> => {
    const warnings: string[] = [];
    const xattrs = await options.xattrs;
    const result = await writeTar({
      root: request.root,
      xattrs,
      mtimeClamp: request.mtimeClamp,
      chunkSize: request.chunkSize,
      allocChunk,
      warn: (line) => warnings.push(line),
      onEntry: (n) => {
        entries = n;
      },
      emit: (chunk) => {
        const whole = Buffer.from(chunk.buffer, chunk.byteOffset, request.chunkSize);
        options.onChunk(chunk, entries, () => {
          free.push(whole);
          const wake = waiter;
          waiter = undefined;
          wake?.();
        });
        return undefined;
      },
    });
    return { ...result, warnings };
  };
  return {
    done: run(),
    async cancel() {
      cancelled = true;
      waiter?.();
    },
  };
}
