import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, createWriteStream, openSync } from "node:fs";
import { rm } from "node:fs/promises";
import type { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { CodecChoice } from "./codecs.js";

/**
 * One compressor fed with the tar stream, writing to a temporary file. `write` calls `done` once
 * the compressor no longer needs the chunk (the producer then reuses the buffer: that is the
 * backpressure). `failed` rejects as soon as the compressor fails.
 */
export interface CompressSink {
  readonly label: string;
  readonly failed: Promise<never>;
  write(chunk: Buffer, done: (err?: Error | null) => void): void;
  /** Ends the input and waits until the output file is complete. */
  finish(): Promise<void>;
  /** Stops the compressor and removes its output. Never throws. */
  abort(): Promise<void>;
}

class ProgramSink implements CompressSink {
  private readonly child: ChildProcess;
  private readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly failed: Promise<never>;
  private stderr = "";
  private error: Error | undefined;
  private ending = false;

  constructor(
    readonly label: string,
    path: string,
    args: string[],
    private readonly outPath: string,
  ) {
    // The compressor writes the file itself: its output never passes through this process.
    const fd = openSync(outPath, "wx", 0o644);
    try {
      this.child = spawn(path, args, { stdio: ["pipe", fd, "pipe"] });
    } finally {
      closeSync(fd);
    }
    this.child.stderr!.on("data", (c: Buffer) => {
      if (this.stderr.length < 4096) this.stderr += c.toString("utf8");
    });
    this.exited = new Promise((resolve) => {
      this.child.on("close", (code, signal) => resolve({ code, signal }));
    });
    this.failed = new Promise<never>((_, reject) => {
      const fail = (err: Error) => {
        this.error ??= err;
        reject(this.error);
      };
      this.child.on("error", fail);
      this.child.stdin!.on("error", fail);
      this.exited.then(({ code, signal }) => {
        if (!this.ending) fail(this.exitError(code, signal, "exited early"));
      });
    });
    this.failed.catch(() => {});
  }

  private exitError(code: number | null, signal: string | null, what: string): Error {
    const detail = this.stderr.trim().split("\n")[0] ?? "";
    const how = signal ? `signal ${signal}` : `exit code ${code}`;
    return new Error(`${this.label} ${what} (${how})${detail ? `: ${detail}` : ""}`);
  }

  write(chunk: Buffer, done: (err?: Error | null) => void): void {
    if (this.error) done(this.error);
    else this.child.stdin!.write(chunk, done);
  }

  async finish(): Promise<void> {
    if (this.error) throw this.error;
    this.ending = true;
    this.child.stdin!.end();
    const { code, signal } = await this.exited;
    if (code !== 0) throw this.error ?? this.exitError(code, signal, "failed");
  }

  async abort(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
    await this.exited;
    await rm(this.outPath, { force: true });
  }
}

class TransformSink implements CompressSink {
  private readonly done: Promise<void>;
  readonly failed: Promise<never>;
  private error: Error | undefined;

  constructor(
    readonly label: string,
    private readonly transform: Writable & NodeJS.ReadableStream,
    private readonly outPath: string,
  ) {
    const out = createWriteStream(outPath, { flags: "wx", mode: 0o644 });
    this.done = pipeline(transform, out);
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

  async abort(): Promise<void> {
    this.transform.destroy();
    await this.done.catch(() => {});
    await rm(this.outPath, { force: true });
  }
}

export async function openCompressSink(choice: CodecChoice, outPath: string): Promise<CompressSink> {
  if (choice.kind === "program") return new ProgramSink(choice.label, choice.path, choice.spec.args, outPath);
  const transform = (await choice.create()) as Writable & NodeJS.ReadableStream;
  return new TransformSink(choice.label, transform, outPath);
}
