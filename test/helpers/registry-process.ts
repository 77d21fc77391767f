import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";

/** The built CLI (`npm test` runs tsc first, so dist/ is fresh). */
export const TEMPLAR = join(import.meta.dirname, "..", "..", "dist", "cli", "templar.js");

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program to completion without blocking this process (servers in it keep serving). */
export function runProcess(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { ...(env ? { env } : {}), stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** Runs `templar ...` to completion (async, so servers in this process keep serving). */
export function templar(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return runProcess(process.execPath, [TEMPLAR, ...args], {
    ...process.env,
    TEMPLAR_TOKEN: "",
    TEMPLAR_REGISTRY: "",
    ...env,
  });
}

/** `templar token create`: the token is the last line of stdout. */
export function createToken(config: string, ...scopes: string[]): string {
  const args = [TEMPLAR, "token", "create", "--config", config, ...scopes.flatMap((s) => ["--scope", s])];
  const result = spawnSync(process.execPath, args, { encoding: "utf8" });
  if (result.status !== 0) throw new Error(`token create failed: ${result.stderr}`);
  return result.stdout.trim().split("\n").pop()!;
}

export interface RegistryProcess {
  url: string;
  port: number;
  child: ChildProcess;
  /** Every log line the server wrote (JSON per request). */
  log: string[];
  stop(): Promise<void>;
}

/** Starts `templar serve` on 127.0.0.1:0 and waits for its "listening" log line. */
export async function startRegistry(storage: string, config: string): Promise<RegistryProcess> {
  const child = spawn(
    process.execPath,
    [TEMPLAR, "serve", "--storage", storage, "--listen", "127.0.0.1:0", "--config", config],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const log: string[] = [];
  let stderr = "";
  child.stderr!.on("data", (d) => {
    stderr += d;
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`templar serve did not start: ${stderr}`)), 15_000);
    child.on("exit", (code) => reject(new Error(`templar serve exited with ${code}: ${stderr}`)));
    createInterface({ input: child.stdout! }).on("line", (line) => {
      log.push(line);
      try {
        const entry = JSON.parse(line) as { event?: string; url?: string };
        if (entry.event === "listening" && entry.url) {
          clearTimeout(timer);
          resolve(entry.url.replace(/\/$/, ""));
        }
      } catch {
        // not JSON: ignore
      }
    });
  });
  return {
    url,
    port: Number(new URL(url).port),
    child,
    log,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}
