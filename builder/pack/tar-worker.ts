import { closeSync, openSync, writeSync } from "node:fs";
import { parentPort, workerData } from "node:worker_threads";
import { UserError } from "../../common/errors.js";
import type { ProducerMessage, ProducerRequest, XattrList } from "./tar-producer.js";
import { ChunkPool, runHashedTar } from "./tar-run.js";
import type { XattrMap } from "./xattrs.js";

/**
 * Worker thread that reads the tree and fills tar chunks with synchronous file system calls. It
 * hashes each chunk and writes it with blocking writes straight into the compressor programs'
 * input fifos, as `tar | zstd` does: no hop through the main thread, whose scheduling latency
 * starved the compressors on a loaded machine. Only for in-process compressors do chunks travel
 * to the main thread (by transfer, no copy) and come back for reuse once consumed.
 */
const request = workerData as ProducerRequest;
const port = parentPort!;
const pool = new ChunkPool(request.chunkSize, request.poolSize);

let fifosReady: () => void;
const fifosMade = new Promise<void>((resolve) => {
  fifosReady = resolve;
});
let xattrsReady: (map: XattrMap) => void;
const xattrs = new Promise<XattrMap>((resolve) => {
  xattrsReady = resolve;
});

port.on(
  "message",
  (
    message:
      | { type: "return"; buffer: ArrayBuffer }
      | { type: "xattrs"; list: XattrList }
      | { type: "fifos-ready" },
  ) => {
    if (message.type === "fifos-ready") {
      fifosReady();
      return;
    }
    if (message.type === "xattrs") {
      const map: XattrMap = new Map();
      for (const [path, attrs] of message.list) {
        map.set(
          path,
          attrs.map(([name, value]) => [name, Buffer.from(value.buffer, value.byteOffset, value.length)]),
        );
      }
      xattrsReady(map);
      return;
    }
    pool.release(message.buffer);
  },
);

function post(message: ProducerMessage, transfer?: ArrayBuffer[]): void {
  port.postMessage(message, transfer);
}

/** Writes all of `chunk` to a blocking fd; EPIPE means the compressor is gone. */
function writeAll(fd: number, chunk: Buffer): void {
  let off = 0;
  while (off < chunk.length) {
    try {
      off += writeSync(fd, chunk, off, chunk.length - off);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EPIPE") throw new CompressorGone();
      throw err;
    }
  }
}

class CompressorGone extends Error {
  constructor() {
    super("a compressor stopped reading its input");
  }
}

async function main(): Promise<void> {
  const fds: number[] = [];
  try {
    // Blocks until the main thread's matching open for reading.
    if (request.fifos.length > 0) await fifosMade;
    for (const fifo of request.fifos) fds.push(openSync(fifo, "w"));
    const result = await runHashedTar({
      root: request.root,
      xattrs: await xattrs,
      mtimeClamp: request.mtimeClamp,
      pool,
      emit: (chunk, bytes, entries) => {
        for (const fd of fds) writeAll(fd, chunk);
        const buffer = chunk.buffer as ArrayBuffer;
        if (request.relay) {
          post({ type: "chunk", buffer, length: chunk.length, entries }, [buffer]);
        } else {
          pool.release(buffer);
          post({ type: "progress", bytes, entries });
        }
      },
    });
    for (const fd of fds.splice(0)) closeSync(fd); // end of input: the compressors finish
    post({ type: "done", ...result });
  } catch (err) {
    for (const fd of fds) closeSync(fd);
    const user = err instanceof UserError;
    post({
      type: "error",
      message: (err as Error).message ?? String(err),
      user,
      exitCode: user ? err.exitCode : 1,
      compressorGone: err instanceof CompressorGone,
    });
  }
}

void main();
