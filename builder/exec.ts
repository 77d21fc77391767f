import { spawn } from "node:child_process";
import { UserError } from "../common/errors.js";

export interface RunOptions {
  /** What is running, for the error message ("mmdebstrap", "run step at file:3:5"). */
  what: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Aborting kills the child (SIGTERM, then SIGKILL after 5 s). */
  signal?: AbortSignal;
  /** Every output line (stdout and stderr), for progress and --verbose. */
  onLine?: (line: string) => void;
  input?: string;
}

/** Environment for tools run during a build: no host locale or proxies leak into the rootfs. */
export function buildEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    HOME: "/root",
    LANG: "C.UTF-8",
    LC_ALL: "C.UTF-8",
    DEBIAN_FRONTEND: "noninteractive",
    DEBCONF_NONINTERACTIVE_SEEN: "true",
  };
  for (const key of ["http_proxy", "https_proxy", "no_proxy", "TMPDIR"]) {
    if (process.env[key]) env[key] = process.env[key];
  }
  for (const [key, value] of Object.entries(extra)) if (value !== undefined) env[key] = value;
  return env;
}

/**
 * Environment for host tools that only read (tar listing, getfattr, rpm queries): the host's
 * own, with the C locale so that their output parses the same everywhere.
 */
export function hostToolEnv(): NodeJS.ProcessEnv {
  return { ...process.env, LC_ALL: "C" };
}

/**
 * Runs a program to completion. On failure throws a one-line UserError that names `what`,
 * the exit status and the most telling output line (apt's "E:" lines first).
 */
export function runTool(command: string, args: string[], options: RunOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted) return reject(new UserError("interrupted", 130));
    const child = spawn(command, args, {
      env: options.env ?? buildEnv(),
      cwd: options.cwd,
      stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    const tail: string[] = [];
    const onData = (() => {
      const partial = { out: "", err: "" };
      return (which: "out" | "err", chunk: Buffer) => {
        const lines = (partial[which] + chunk.toString("utf8")).split("\n");
        partial[which] = lines.pop() ?? "";
        for (const line of lines) {
          tail.push(line);
          if (tail.length > 50) tail.shift();
          options.onLine?.(line);
        }
      };
    })();
    child.stdout?.on("data", (c: Buffer) => onData("out", c));
    child.stderr?.on("data", (c: Buffer) => onData("err", c));
    if (options.input !== undefined) child.stdin?.end(options.input);

    let killTimer: NodeJS.Timeout | undefined;
    const abort = () => {
      child.kill("SIGTERM");
      killTimer = setTimeout(() => child.kill("SIGKILL"), 5000);
    };
    options.signal?.addEventListener("abort", abort, { once: true });

    child.on("error", (err: NodeJS.ErrnoException) => {
      options.signal?.removeEventListener("abort", abort);
      reject(
        err.code === "ENOENT"
          ? new UserError(`${options.what}: '${command}' is not installed`)
          : new UserError(`${options.what}: ${err.message}`),
      );
    });
    child.on("close", (code, sig) => {
      options.signal?.removeEventListener("abort", abort);
      if (killTimer) clearTimeout(killTimer);
      if (options.signal?.aborted) return reject(new UserError("interrupted", 130));
      if (code === 0) return resolve();
      const meaningful = tail.map((l) => l.trim()).filter((l) => l.length > 0);
      const errorLine =
        meaningful.filter((l) => /^(E:|Error|error:|\S+: error)/.test(l)).at(-1) ?? meaningful.at(-1) ?? "";
      const status = sig ? `killed by ${sig}` : `exit ${code}`;
      reject(new UserError(`${options.what} failed (${status})${errorLine ? `: ${errorLine}` : ""}`));
    });
  });
}
