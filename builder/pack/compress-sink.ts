import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, createWriteStream, openSync } from "node:fs";
import { open, rm } from "node:fs/promises";
import { Transform, type Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { CodecChoice } from "../../common/compression/codecs.js";
import { UserError } from "../../common/errors.js";
import { releasePendingOpens } from "./fifo.js";
import { GrowingFileHash } from "./growing-file-hash.js";

/**
 * One compressor fed with the tar stream, writing to a temporary file. `write` calls `done` once
 * the compressor no longer needs the chunk (the producer then reuses the buffer: that is the
 * backpressure). `failed` rejects as soon as the compressor fails.
 */
export interface CompressSink {
  readonly label: string;
  readonly failed: Promise<never>;
  /** Resolves once the compressor reads its input (a program: started on its fifo, or failed). */
  readonly started: Promise<void>;
  write(chunk: Buffer, done: (err?: Error | null) => void): void;
  /** Ends the input and waits until the output file is complete. */
  finish(): Promise<void>;
  /** After finish: sha256 and size of the output file (hashed while it was written). */
  digest(): Promise<{ hex: string; size: number }>;
  /**
   * Stops the compressor and removes its output. Never throws. `graceMs`: first give a compressor
   * that is already ending (its input closed) that long to exit with its own status.
   */
  abort(graceMs?: number): Promise<void>;
  /** After abort: why the compressor failed on its own (not killed by us), if it did. */
  failure(): Error | undefined;
}

class TransformSink implements CompressSink {
  private readonly done: Promise<void>;
  readonly failed: Promise<never>;
  readonly started = Promise.resolve();
  private error: Error | undefined;
  private readonly hash = createHash("sha256");
  private size = 0;

  constructor(
    readonly label: string,
    private readonly transform: Writable & NodeJS.ReadableStream,
    private readonly outPath: string,
  ) {
    const out = createWriteStream(outPath, { flags: "wx", mode: 0o644 });
    const hashing = new Transform({
      transform: (chunk: Buffer, _encoding, next) => {
        this.hash.update(chunk);
        this.size += chunk.length;
        next(null, chunk);
      },
    });
    this.done = pipeline(transform, hashing, out);
    this.failed = this.done.then(
      () => {
        throw new Error(`${label} ended early`);
      },
      (err: Error) => {
        this.error ??= err;
        throw err;
      },
    );
    this.failed.catch(() => {});
  }

  write(chunk: Buffer, done: (err?: Error | null) => void): void {
    if (this.error) done(this.error);
    else this.transform.write(chunk, done);
  }

  async finish(): Promise<void> {
    this.transform.end();
    await this.done;
  }

  async digest(): Promise<{ hex: string; size: number }> {
    return { hex: this.hash.digest("hex"), size: this.size };
  }

  failure(): Error | undefined {
    return this.error;
  }

  async abort(): Promise<void> {
    this.transform.destroy();
    await this.done.catch(() => {});
    await rm(this.outPath, { force: true });
  }
}

/**
 * A compressor program reading a fifo that the tar producer writes into with blocking writes
 * (like `tar | zstd`). `write` is not used: the producer writes the fifo itself.
 */
class FifoProgramSink implements CompressSink {
  readonly failed: Promise<never>;
  private child: ChildProcess | undefined;
  readonly started: Promise<void>;
  private readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private stderr = "";
  private error: Error | undefined;
  private ending = false;
  private opened = false;
  private killed = false;
  private ownFailure: Error | undefined;
  private readonly outputHash: GrowingFileHash;

  constructor(
    readonly label: string,
    path: string,
    args: string[],
    private readonly outPath: string,
    private readonly fifo: string,
  ) {
    const outFd = openSync(outPath, "wx", 0o644);
    this.outputHash = new GrowingFileHash(outPath);
    let exitedResolve!: (v: { code: number | null; signal: NodeJS.Signals | null }) => void;
    this.exited = new Promise((resolve) => {
      exitedResolve = resolve;
    });
    let fail!: (err: Error) => void;
    this.failed = new Promise<never>((_, reject) => {
      fail = (err: Error) => {
        this.error ??= err;
        reject(this.error);
      };
    });
    this.failed.catch(() => {});
    // Opening a fifo for reading waits (in the libuv pool) for the writer: the tar producer.
    this.started = open(fifo, "r").then(
      (handle) => {
        this.opened = true;
        try {
          const child = spawn(path, args, { stdio: [handle.fd, outFd, "pipe"] });
          this.child = child;
          child.stderr!.on("data", (c: Buffer) => {
            if (this.stderr.length < 4096) this.stderr += c.toString("utf8");
          });
          child.on("error", fail);
          child.on("close", (code, signal) => {
            exitedResolve({ code, signal });
            // Exit 0 before finish(): the reader closed the fifo (done, or failed itself and says why).
            if (code !== 0 && !this.killed) {
              this.ownFailure ??= this.exitError(code, signal, "exited early");
              if (!this.ending) fail(this.ownFailure);
            }
          });
        } finally {
          void handle.close();
          closeSync(outFd);
        }
      },
      (err: Error) => {
        closeSync(outFd);
        fail(err);
        exitedResolve({ code: null, signal: null });
      },
    );
  }

  private exitError(code: number | null, signal: string | null, what: string): Error {
    const detail = this.stderr.trim().split("\n")[0] ?? "";
    const how = signal ? `signal ${signal}` : `exit code ${code}`;
    return new UserError(`${this.label} ${what} (${how})${detail ? `: ${detail}` : ""}`);
  }

  write(_chunk: Buffer, done: (err?: Error | null) => void): void {
    done(new Error(`internal: ${this.label} reads a fifo`));
  }

  failure(): Error | undefined {
    return this.ownFailure;
  }

  /** Call once the producer has closed the fifo (end of input). */
  async finish(): Promise<void> {
    this.ending = true;
    await this.started;
    if (this.error) throw this.error;
    const { code, signal } = await this.exited;
    if (code !== 0) throw this.error ?? this.exitError(code, signal, "failed");
  }

  digest(): Promise<{ hex: string; size: number }> {
    return this.outputHash.digest();
  }

  async abort(graceMs = 0): Promise<void> {
    this.ending = true;
    this.outputHash.cancel();
    if (!this.opened) releasePendingOpens(this.fifo, "reader");
    await this.started.catch(() => {});
    if (graceMs > 0) await Promise.race([this.exited, new Promise((r) => setTimeout(r, graceMs).unref())]);
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      this.killed = true;
      child.kill("SIGKILL");
    }
    await this.exited;
    await rm(this.outPath, { force: true });
  }
}

/** Feeds a compressor program through `fifo` written by the tar producer (see FifoProgramSink). */
export function openFifoSink(
  choice: CodecChoice & { kind: "program" },
  outPath: string,
  fifo: string,
): CompressSink {
  return new FifoProgramSink(choice.label, choice.path, choice.spec.args, outPath, fifo);
}

/** An in-process compressor (programs read fifos: openFifoSink). */
export async function openCompressSink(choice: CodecChoice, outPath: string): Promise<CompressSink> {
  if (choice.kind === "program") throw new Error("internal: compressor programs read a fifo");
  const transform = (await choice.create()) as Writable & NodeJS.ReadableStream;
  return new TransformSink(choice.label, transform, outPath);
}
