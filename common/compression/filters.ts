import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { open } from "node:fs/promises";
import { type Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { CREATE_EXCLUSIVE } from "../atomic.js";
import { errorMessage, UserError } from "../errors.js";
import type { Format } from "../formats.js";
import { chooseCodec, findProgram } from "./codecs.js";

/**
 * Streams through programs and codecs, for delta patches (making them in the registry,
 * applying them on hosts): a filter is a running program or in-process transform whose output
 * is read while its input streams in; `done` settles when it exited cleanly (or with its error).
 */
export interface Filter {
  output: Readable;
  done: Promise<void>;
}

/** Runs `command args` reading `input` (or nothing) on stdin; its stdout is the filter's output. */
export function spawnFilter(command: string, args: string[], input: Readable | null, what: string): Filter {
  const path = findProgram(command);
  if (!path) throw new UserError(`${what} needs the ${command} program, which is not installed`);
  const child = spawn(path, args, { stdio: [input ? "pipe" : "ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (c: Buffer) => {
    if (stderr.length < 4096) stderr += c.toString("utf8");
  });
  const exited = new Promise<void>((resolve, reject) => {
    child.on("error", (err) => reject(new UserError(`${what}: ${command}: ${errorMessage(err)}`)));
    child.on("close", (code, signal) => {
      if (code === 0) return resolve();
      const line = stderr.trim().split("\n").pop() ?? "";
      reject(
        new UserError(`${what}: ${command} failed (${signal ?? `exit ${code}`})${line ? `: ${line}` : ""}`),
      );
    });
  });
  // A program that stops reading early (it failed) breaks the pipe: its own exit says why.
  const fed = input ? pipeline(input, child.stdin!).catch(() => {}) : Promise.resolve();
  child.stdout!.on("error", () => {});
  const done = Promise.all([exited, fed]).then(() => {});
  // Whoever reads the output awaits `done`; one that stopped early (its own error came first)
  // may never do so, and a failed program must not become an unhandled rejection (which would
  // take a registry process down).
  done.catch(() => {});
  return { output: child.stdout!, done };
}

/** Decompresses or compresses `input` as `format`, with the builder's program or in-process codec. */
export async function codecFilter(
  format: Format,
  direction: "compress" | "decompress",
  input: Readable,
  what: string,
): Promise<Filter> {
  const choice = chooseCodec(format, direction);
  if (choice.kind === "program") return spawnFilter(choice.spec.command, choice.spec.args, input, what);
  const transform = await choice.create();
  const done = pipeline(input, transform).catch((err) => {
    throw new UserError(`${what}: ${choice.label}: ${errorMessage(err)}`);
  });
  const settled = done.then(() => {});
  settled.catch(() => {}); // as above: awaited by the reader, never left unhandled
  return { output: transform, done: settled };
}

/** Counts and hashes what passes. */
export function hashTap(): Transform & { size: number; hex(): string } {
  const hash = createHash("sha256");
  const tap = new Transform({
    highWaterMark: 1 << 20,
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      tap.size += chunk.length;
      done(null, chunk);
    },
  }) as Transform & { size: number; hex(): string };
  tap.size = 0;
  let digest: string | null = null;
  tap.hex = () => {
    digest ??= hash.digest("hex");
    return digest;
  };
  return tap;
}

/**
 * Writes `input` to a new file `path` (created exclusively, never through a symlink), waiting
 * for every filter upstream; returns the sha256 and size of what was written.
 */
export async function writeNewFile(
  input: Readable,
  path: string,
  upstream: Promise<void>[] = [],
): Promise<{ hex: string; size: number }> {
  const tap = hashTap();
  const out = (await open(path, CREATE_EXCLUSIVE, 0o644)).createWriteStream();
  const results = await Promise.allSettled([pipeline(input, tap, out), ...upstream]);
  // An upstream program's own error says more than the broken pipe it caused downstream.
  const failure = results.slice(1).find((r) => r.status === "rejected") ?? results[0];
  if (failure?.status === "rejected") throw failure.reason;
  return { hex: tap.hex(), size: tap.size };
}
