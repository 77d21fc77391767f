/**
 * Process and measurement helpers of bench/registry.ts: core pinning, curl timings, the load
 * generator (bench/registry-load.ts), RSS sampling and the bare node:http reference server.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";

const LOAD_SCRIPT = join(import.meta.dirname, "registry-load.js");

export function hasTool(tool: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

// On two or more cores, servers under test run on core 1 and their clients (curl, the load
// loop) on core 0 (taskset), so a comparison is not decided by how the scheduler shares the
// cores with whatever else runs. nginx runs one worker, the registry one event loop.
export const pin = os.cpus().length >= 2 && hasTool("taskset");

function onClientCore(cmd: string, args: string[]): [string, string[]] {
  return pin ? ["taskset", ["-c", "0", cmd, ...args]] : [cmd, args];
}

/** Moves every thread of a server process to core 1 (when pinning). */
export function pinServer(pid: number): void {
  if (pin) execFileSync("taskset", ["-a", "-p", "-c", "1", String(pid)], { stdio: "ignore" });
}

export interface Server {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

/** SIGTERM, then waits for the exit (at once if it has already exited). */
export function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
  });
}

/** Seconds curl takes to fetch `url` to /dev/null. */
export function curlTime(url: string): number {
  const [cmd, args] = onClientCore("curl", ["-sS", "-f", "-o", "/dev/null", "-w", "%{time_total}", url]);
  return Number(execFileSync(cmd, args, { encoding: "utf8" }));
}

/** Wall seconds for `n` curls fetching `url` at once. */
export async function concurrentCurl(url: string, n: number): Promise<number> {
  const start = process.hrtime.bigint();
  await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<void>((resolve, reject) => {
          const [cmd, args] = onClientCore("curl", ["-sS", "-f", "-o", "/dev/null", url]);
          const child = spawn(cmd, args, { stdio: "ignore" });
          child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`curl exited ${code}`))));
        }),
    ),
  );
  return Number(process.hrtime.bigint() - start) / 1e9;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Samples VmRSS every 50 ms and reads VmHWM at the end; returns kB. */
export function sampleRss(pid: number): { stop(): number } {
  let max = 0;
  const read = async () => {
    const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
    const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    const hwm = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
    max = Math.max(max, rss, hwm);
  };
  const timer = setInterval(read, 50);
  return {
    stop() {
      clearInterval(timer);
      const status = execFileSync("cat", [`/proc/${pid}/status`], { encoding: "utf8" });
      return Math.max(max, Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0));
    },
  };
}

/** Requests per second the load generator (on the client core) reaches against `url`. */
export async function load(url: string, seconds: number, connections: number): Promise<number> {
  const command = [process.execPath, LOAD_SCRIPT, url, String(seconds), String(connections)];
  const [cmd, args] = onClientCore(command[0]!, command.slice(1));
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => {
    out += d;
  });
  const code = await new Promise((resolve) => child.on("exit", resolve));
  if (code !== 0) throw new Error(`the load generator exited ${code}`);
  const result = JSON.parse(out) as { requests: number; seconds: number; errors: number };
  if (result.errors > 0) throw new Error(`${result.errors} failed requests against ${url}`);
  return result.requests / result.seconds;
}

/** A bare node:http server answering every request with the same JSON file. */
export async function startBare(file: string): Promise<Server> {
  const code = `
    const body = require("fs").readFileSync(${JSON.stringify(file)});
    require("http").createServer((req, res) => {
      res.writeHead(200, { "content-type": "application/json", "content-length": body.length });
      res.end(body);
    }).listen(0, "127.0.0.1", function () { console.log(this.address().port); });`;
  const child = spawn(process.execPath, ["-e", code], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<number>((resolve) =>
    child.stdout!.once("data", (d: Buffer) => resolve(Number(String(d).trim()))),
  );
  return {
    url: `http://127.0.0.1:${port}/`,
    pid: child.pid!,
    stop: () => stopChild(child),
  };
}
