import { parentPort, workerData } from "node:worker_threads";
import { UserError } from "../../common/errors.js";
import type { ProducerMessage, ProducerRequest, XattrList } from "./tar-producer.js";
import { writeTar } from "./tar-writer.js";
import type { XattrMap } from "./xattrs.js";

/**
 * Worker thread that reads the tree and fills tar chunks with synchronous file system calls, so
 * the main thread's event loop stays free to keep every compressor's pipe full. Chunks travel
 * to the main thread by transfer (no copy) and come back for reuse once written.
 */
const request = workerData as ProducerRequest;
const port = parentPort!;
const free: ArrayBuffer[] = [];
let allocated = 0;
let waiter: (() => void) | undefined;
let entries = 0;

let xattrsReady: (map: XattrMap) => void;
const xattrs = new Promise<XattrMap>((resolve) => {
  xattrsReady = resolve;
});

port.on(
  "message",
  (message: { type: "return"; buffer: ArrayBuffer } | { type: "xattrs"; list: XattrList }) => {
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
    free.push(message.buffer);
    const wake = waiter;
    waiter = undefined;
    wake?.();
  },
);

async function allocChunk(): Promise<Buffer> {
  for (;;) {
    const buffer = free.pop();
    if (buffer) return Buffer.from(buffer);
    if (allocated < request.poolSize) {
      allocated++;
      return Buffer.from(new ArrayBuffer(request.chunkSize));
    }
    await new Promise<void>((resolve) => {
      waiter = resolve;
    });
  }
}

function post(message: ProducerMessage, transfer?: ArrayBuffer[]): void {
  port.postMessage(message, transfer);
}

async function main(): Promise<void> {
  const warnings: string[] = [];
  try {
    const result = await writeTar({
      root: request.root,
      xattrs: await xattrs,
      mtimeClamp: request.mtimeClamp,
      chunkSize: request.chunkSize,
      allocChunk,
      warn: (line) => warnings.push(line),
      onEntry: (n) => {
        entries = n;
      },
      emit: (chunk) => {
        const buffer = chunk.buffer as ArrayBuffer;
        post({ type: "chunk", buffer, length: chunk.length, entries }, [buffer]);
        return undefined;
      },
    });
    post({ type: "done", entries: result.entries, size: result.size, warnings });
  } catch (err) {
    const user = err instanceof UserError;
    post({
      type: "error",
      message: (err as Error).message ?? String(err),
      user,
      exitCode: user ? err.exitCode : 1,
    });
  }
}

void main();
