import { spawn } from "node:child_process";
import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import type { Readable } from "node:stream";
import { chooseCodec, formatFromMagic } from "../../common/compression/codecs.js";
import { ExitCode, UserError } from "../../common/errors.js";
import type { Format } from "../../common/formats.js";

/** Reads the first bytes of a file and names its compression format, or null. */
export async function sniffFormat(path: string): Promise<Format | null> {
  const handle = await open(path, "r");
  try {
    const head = Buffer.alloc(8);
    const { bytesRead } = await handle.read(head, 0, 8, 0);
    return formatFromMagic(head.subarray(0, bytesRead));
  } finally {
    await handle.close();
  }
}

function corrupt(path: string, detail: string): UserError {
  return new UserError(`${path} is corrupt or truncated: ${detail}`, ExitCode.verification);
}

/**
 * Streams the decompressed bytes of a compressed tar, with the same program/in-process choice as
 * packing. A decompressor failure (bad data, early end) becomes a "corrupt or truncated" error
 * with exit code 3.
 */
export async function* decompressFile(
  path: string,
  format: Format,
  inProcessOnly = false,
): AsyncGenerator<Buffer> {
  const choice = chooseCodec(format, "decompress", inProcessOnly);
  if (choice.kind === "program") {
    const input = await open(path, "r");
    const child = spawn(choice.path, choice.spec.args, { stdio: [input.fd, "pipe", "pipe"] });
    let stderr = "";
    child.stderr!.on("data", (c: Buffer) => {
      if (stderr.length < 4096) stderr += c.toString("utf8");
    });
    const exited = new Promise<number | null>((resolve, reject) => {
      child.on("error", reject);
      child.on("close", (code) => resolve(code));
    });
    let complete = false;
    try {
      for await (const chunk of child.stdout! as Readable) yield chunk as Buffer;
      const code = await exited;
      if (code !== 0) {
        const line = stderr.trim().split("\n").pop() ?? "";
        throw corrupt(path, line.replace(/^[^:]*: /, "") || `${choice.label} exit code ${code}`);
      }
      complete = true;
    } finally {
      if (!complete && child.exitCode === null) child.kill("SIGKILL");
      await input.close();
    }
    return;
  }
  const transform = await choice.create();
  const source = createReadStream(path, { highWaterMark: 1 << 20 });
  source.on("error", (err) => transform.destroy(err));
  source.pipe(transform);
  try {
    for await (const chunk of transform) yield chunk as Buffer;
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw corrupt(path, (err as Error).message);
  } finally {
    source.destroy();
  }
}
