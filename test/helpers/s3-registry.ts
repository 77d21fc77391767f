import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { Rgw } from "./rgw.js";

const here = dirname(fileURLToPath(import.meta.url));
/** The built CLI, from test/helpers/ or from the compiled copy under dist/ (bench). */
const CLI = [resolve(here, "../../dist/cli/templar.js"), resolve(here, "../../cli/templar.js")].find((p) =>
  existsSync(p),
);

/** A `templar serve --storage s3://...` process and the JSON lines it logged. */
export interface S3Serve {
  url: string;
  child: ChildProcess;
  /** stdout lines, parsed when JSON. */
  logs: Record<string, unknown>[];
  stderr: () => string;
  stop(): Promise<void>;
  kill(): Promise<void>;
}

export interface S3ServeOptions {
  bucket: string;
  configPath: string;
  /** Extra `templar serve` arguments (e.g. --s3-redirect). */
  args?: string[];
  /** Environment overrides (e.g. a wrong secret); undefined values remove a variable. */
  env?: Record<string, string | undefined>;
}

/**
 * Runs the built CLI as its own process on the RGW's bucket, configured the way an operator
 * would: endpoint, path style and credentials from the environment scripts/rgw printed.
 */
export async function spawnS3Serve(rgw: Rgw, options: S3ServeOptions): Promise<S3Serve> {
  if (!CLI) throw new Error("dist/cli/templar.js is missing: run 'npm run build' first (npm test does)");
  const env: Record<string, string | undefined> = { ...process.env, ...rgw.env, ...options.env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
  const child = spawn(
    process.execPath,
    [
      CLI,
      "serve",
      "--storage",
      `s3://${options.bucket}`,
      "--listen",
      "127.0.0.1:0",
      "--config",
      options.configPath,
      ...(options.args ?? []),
    ],
    { stdio: ["ignore", "pipe", "pipe"], env: env as NodeJS.ProcessEnv },
  );
  const logs: Record<string, unknown>[] = [];
  let stderr = "";
  child.stderr!.on("data", (d) => {
    stderr += d;
  });
  const url = await new Promise<string>((done, fail) => {
    createInterface({ input: child.stdout! }).on("line", (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        entry = { text: line };
      }
      logs.push(entry);
      if (entry.event === "listening" && typeof entry.url === "string") done(entry.url);
    });
    child.once("exit", (code) => fail(new Error(`templar serve exited with ${code}: ${stderr}`)));
    setTimeout(() => fail(new Error(`templar serve did not start: ${stderr}`)), 30_000).unref();
  });
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  const stopWith = async (signal: NodeJS.Signals) => {
    if (exited()) return;
    const gone = new Promise((r) => child.once("exit", r));
    child.kill(signal);
    await gone;
  };
  return {
    url,
    child,
    logs,
    stderr: () => stderr,
    stop: () => stopWith("SIGTERM"),
    kill: () => stopWith("SIGKILL"),
  };
}
