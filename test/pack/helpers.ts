import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const CLI = resolve(import.meta.dirname, "../../dist/cli/templar.js");

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `templar-${prefix}-`));
}

export function removeDir(dir: string | undefined): void {
  if (dir) rmSync(dir, { recursive: true, force: true });
}

export function sha256Of(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

export function fileSha256(path: string): string {
  return sha256Of(readFileSync(path));
}

/** Decompresses with the real program (zstd, gzip, xz), never our own code. */
export function decompressWithProgram(path: string): Buffer {
  const program = path.endsWith(".zst") ? "zstd" : path.endsWith(".gz") ? "gzip" : "xz";
  return execFileSync(program, ["-d", "-c", path], { maxBuffer: 1 << 30 });
}

/** Runs the built CLI (dist/), as a user would. */
export function runCli(args: string[], options: { prefix?: string[]; env?: NodeJS.ProcessEnv } = {}) {
  const argv = [...(options.prefix ?? []), process.execPath, CLI, ...args];
  const result = spawnSync(argv[0]!, argv.slice(1), {
    encoding: "utf8",
    env: { ...process.env, ...options.env },
    maxBuffer: 1 << 26,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}
