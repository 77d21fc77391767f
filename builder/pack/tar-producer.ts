import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { UserError } from "../../common/errors.js";
import { ChunkPool, runHashedTar, type TarRunResult } from "./tar-run.js";
import type { XattrMap } from "./xattrs.js";

/** What the tar worker is told (workerData). */
export interface ProducerRequest {
  root: string;
  mtimeClamp: number | undefined;
  chunkSize: number;
  /** Chunks in flight at most: bounds memory and is the backpressure between reader and writers. */
  poolSize: number;
  /** Fifos the worker writes every chunk to (compressor programs read them). */
  fifos: string[];
  /** Whether chunks also go to the main thread (in-process compressors). */
  relay: boolean;
}

export type ProducerMessage =
  | { type: "chunk"; buffer: ArrayBuffer; length: number; entries: number }
  | { type: "progress"; bytes: number; entries: number }
  | { type: "done"; entries: number; size: number; warnings: string[]; sha256: string }
  | { type: "error"; message: string; user: boolean; exitCode: number; compressorGone: boolean };

/** The reader thread hit EPIPE: a compressor program died; its own error says why. */
export class CompressorGoneError extends UserError {}

export interface ProduceOptions {
  root: string;
  mtimeClamp: number | undefined;
  /** The tree's extended attributes (readTreeXattrs), read by the caller while the worker starts. */
  xattrs: Promise<XattrMap>;
  /**
   * Gets every chunk of the tar stream in order (for in-process compressors, and for programs
   * when there is no worker). `release` must be called once nobody reads the chunk any more; the
   * buffer is then reused for later chunks. Without it, chunks only go to `fifos`.
   */
  onChunk?: (chunk: Buffer, entries: number, release: () => void) => void;
  /** Worker mode only: fifos the reader thread writes every chunk to, blocking (see canUseFifos). */
  fifos?: string[];
  /** Resolves once the fifos exist; the worker opens them only then. */
  fifosReady?: Promise<void>;
  onProgress?: (bytes: number, entries: number) => void;
  chunkSize?: number;
  poolSize?: number;
}

export type ProduceResult = TarRunResult;

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
    fifos: options.fifos ?? [],
    relay: options.onChunk !== undefined,
  };
  if (canUseFifos()) return produceInWorker(fileURLToPath(WORKER_URL), request, options);
  if (request.fifos.length > 0) throw new Error("internal: fifos need the worker thread");
  return produceInThread(request, options);
}

/** True when the compiled worker exists, so compressor programs can be fed through fifos. */
export function canUseFifos(): boolean {
  return existsSync(fileURLToPath(WORKER_URL));
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
  let relayed = 0;
  (options.fifosReady ?? Promise.resolve()).then(
    () => {
      if (!finished) worker.postMessage({ type: "fifos-ready" });
    },
    () => {},
  );
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
        relayed += message.length;
        options.onProgress?.(relayed, message.entries);
        options.onChunk?.(Buffer.from(buffer, 0, message.length), message.entries, () => {
          if (!finished) worker.postMessage({ type: "return", buffer }, [buffer]);
        });
      } else if (message.type === "progress") {
        options.onProgress?.(message.bytes, message.entries);
      } else if (message.type === "done") {
        finished = true;
        void worker.terminate();
        const { entries, size, warnings, sha256 } = message;
        resolve({ entries, size, warnings, sha256 });
      } else {
        finished = true;
        void worker.terminate();
        if (message.compressorGone) reject(new CompressorGoneError(message.message));
        else
          reject(
            message.user ? new UserError(message.message, message.exitCode) : new Error(message.message),
          );
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
  const pool = new ChunkPool(request.chunkSize, request.poolSize);
  const run = async (): Promise<ProduceResult> => {
    const consume = options.onChunk;
    if (!consume) throw new Error("internal: no consumer for the tar stream");
    return runHashedTar({
      root: request.root,
      xattrs: await options.xattrs,
      mtimeClamp: request.mtimeClamp,
      pool,
      emit: (chunk, bytes, entries) => {
        options.onProgress?.(bytes, entries);
        consume(chunk, entries, () => pool.release(chunk.buffer as ArrayBuffer));
      },
    });
  };
  return {
    done: run(),
    async cancel() {
      pool.cancel();
    },
  };
}
