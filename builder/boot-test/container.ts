import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { readFileSync, readlinkSync } from "node:fs";
import { readdir, readFile, rm, writeFile } from "node:fs/promises";
import { UserError } from "../../common/errors.js";

/**
 * One throwaway systemd-nspawn container: privileged (hosts without delegated cgroups cannot
 * run `--private-users`), `--register=no --keep-unit` (no machined needed), a private network
 * with one veth pair whose container end is `eth0`, as pct and vzctl name it.
 *
 * Everything runs in one helper process, `setpriv --pdeathsig KILL unshare --mount --pid
 * --fork --kill-child`, which mounts a tmpfs as the container's root in its private mount
 * namespace, fills it (./root.ts populateCommand), waits while templar writes the host's
 * configuration into it (through /proc/PID/root, which reaches into that namespace), then
 * becomes systemd-nspawn. When templar dies for any reason the helper dies with it, and with
 * its pid and mount namespaces every process of the container and the tmpfs: nothing outlives
 * the test, and the host's disk only ever holds the empty mount point and nspawn's flag list
 * (deleting a booted root from a slow disk took longer than the boot). The normal stop kills
 * the container's init, which lets nspawn remove its veth pair itself.
 */

// $1: mount point, $2: nspawn's flags file (one per line), then the populate command.
const HELPER = `set -e
root="$1"; flags="$2"; shift 2
mount -t tmpfs -o mode=0755 templar-boot-test "$root"
"$@"
echo templar-root-ready
read -r go
[ "$go" = boot ] || exit 0
set --
while IFS= read -r flag; do set -- "$@" "$flag"; done < "$flags"
exec systemd-nspawn "$@"
`;

/** Programs the host needs; which Debian package has each (for the error message). */
const HOST_TOOLS: Record<string, string> = {
  "systemd-nspawn": "systemd-container",
  nsenter: "util-linux",
  unshare: "util-linux",
  setpriv: "util-linux",
  ip: "iproute2",
  ping: "iputils-ping",
  tar: "tar",
};

/** Why this host cannot boot a template, or undefined when it can. */
export function hostProblem(): string | undefined {
  if (process.getuid?.() !== 0)
    return "needs root: the template boots in a privileged systemd-nspawn container";
  const missing = Object.keys(HOST_TOOLS).filter(
    (tool) => spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0,
  );
  if (missing.length > 0) {
    const packages = [...new Set(missing.map((tool) => HOST_TOOLS[tool]))].join(" ");
    return `${missing.join(", ")} not installed (Debian: apt install ${packages})`;
  }
  return undefined;
}

export interface ExecResult {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Runs a host program with a time limit; never throws for a non-zero exit. */
export function runHost(command: string, args: string[], timeoutMs: number): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], env: hostEnv() });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString("utf8");
    });
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString("utf8");
    });
    const timer = setTimeout(
      () => {
        timedOut = true;
        child.kill("SIGKILL");
      },
      Math.max(1, timeoutMs),
    );
    child.on("error", (err) => {
      clearTimeout(timer);
      resolve({ code: 127, stdout, stderr: stderr + err.message, timedOut });
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, timedOut });
    });
  });
}

/** A fixed, small environment: nothing of the caller's locale or settings reaches the container. */
function hostEnv(): NodeJS.ProcessEnv {
  return { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C.UTF-8" };
}

export interface ContainerOptions {
  /** Empty directory on the host: the tmpfs is mounted there (in the helper's namespace only). */
  mountPoint: string;
  /** Fills the empty root (its last argument is the root's path). */
  populate: string[];
  /** Machine name (hostname-safe). */
  name: string;
  /** Host side of the veth pair (at most 15 characters). */
  hostLink: string;
  /** Console output of the container, line by line. */
  onLine?: (line: string) => void;
}

export class Container {
  private readonly console: string[] = [];
  private exited = false;
  private exitNote = "";
  private readonly exit: Promise<void>;
  private ready?: () => void;
  /** The helper (later nspawn itself): the child of unshare. */
  private helper = 0;

  /** The container's init as the host sees it (its PID 1), once booted. */
  leader = 0;

  private constructor(
    private readonly child: ChildProcess,
    private readonly options: ContainerOptions,
  ) {
    const onData = (() => {
      let partial = "";
      return (chunk: Buffer) => {
        const lines = (partial + chunk.toString("utf8")).split(/\r?\n/);
        partial = lines.pop() ?? "";
        for (const raw of lines) {
          if (raw === "templar-root-ready" && this.ready) {
            this.ready();
            continue;
          }
          // Console output carries colour codes; the log and error messages want plain text.
          const line = raw.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "");
          this.console.push(line);
          if (this.console.length > 200) this.console.shift();
          options.onLine?.(line);
        }
      };
    })();
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    this.exit = new Promise((resolve) => {
      child.on("close", (code, signal) => {
        this.exited = true;
        this.exitNote = signal ? `killed by ${signal}` : `exit ${code}`;
        resolve();
      });
      child.on("error", (err) => {
        this.exited = true;
        this.exitNote = err.message;
        resolve();
      });
    });
  }

  /**
   * Starts the helper and resolves once the root is populated; `root` then reaches it. Nothing
   * boots until boot() is called.
   */
  static async create(options: ContainerOptions, signal?: AbortSignal): Promise<Container> {
    const flags = [
      "--quiet",
      "--boot",
      `--directory=${options.mountPoint}`,
      `--machine=${options.name}`,
      "--register=no",
      "--keep-unit",
      "--settings=no",
      // The template's own files stay as they are: no host journal link, resolv.conf or zone.
      "--link-journal=no",
      "--resolv-conf=off",
      "--timezone=off",
      "--private-network",
      `--network-veth-extra=${options.hostLink}:eth0`,
    ];
    const flagsFile = `${options.mountPoint}.nspawn-flags`;
    await writeFile(flagsFile, `${flags.join("\n")}\n`, { mode: 0o600 });
    const child = spawn(
      "setpriv",
      [
        "--pdeathsig",
        "KILL",
        "--",
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--pid",
        "--fork",
        "--kill-child",
        "--",
        "/bin/sh",
        "-c",
        HELPER,
        "helper",
        options.mountPoint,
        flagsFile,
        ...options.populate,
      ],
      { stdio: ["pipe", "pipe", "pipe"], env: hostEnv() },
    );
    const container = new Container(child, options);
    const onAbort = () => void container.stop();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      await new Promise<void>((resolve, reject) => {
        container.ready = resolve;
        void container.exit.then(() =>
          reject(
            new UserError(
              `could not prepare the root: ${container.consoleTail(3).join(" | ") || container.exitNote}`,
            ),
          ),
        );
      });
      const unsharePid = child.pid ?? 0;
      container.helper = (await childrenOf(unsharePid))[0] ?? 0;
      if (!container.helper) throw new UserError("the boot test helper process vanished");
    } catch (err) {
      await container.stop();
      throw err;
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
    return container;
  }

  /** The populated root as templar reaches it from the host's namespace. */
  get root(): string {
    return `/proc/${this.helper}/root${this.options.mountPoint}`;
  }

  /** Boots the root: the helper becomes systemd-nspawn; resolves once the container's init runs. */
  async boot(deadline: number): Promise<void> {
    this.child.stdin?.end("boot\n");
    this.leader = await this.findLeader(deadline);
  }

  get running(): boolean {
    return !this.exited && this.leader > 0 && readFileSafe(`/proc/${this.leader}/stat`) !== undefined;
  }

  /** Why the container is gone: nspawn's exit and its last console lines. */
  get stoppedNote(): string {
    const last = this.consoleTail(3).join(" | ");
    return `systemd-nspawn stopped (${this.exitNote || "container init exited"})${last ? `: ${last}` : ""}`;
  }

  consoleTail(n: number): string[] {
    return this.console.filter((l) => l.trim() !== "").slice(-n);
  }

  /** Runs `argv` inside the container (all its namespaces, its own programs), time-limited. */
  exec(argv: string[], timeoutMs: number): Promise<ExecResult> {
    return runHost(
      "nsenter",
      [`--target=${this.leader}`, "--all", "--", "/usr/bin/env", "-i", ...envList(), ...argv],
      timeoutMs,
    );
  }

  /** Runs a HOST program in the container's network namespace only (the template may lack it). */
  execInNetwork(argv: string[], timeoutMs: number): Promise<ExecResult> {
    return runHost("nsenter", [`--target=${this.leader}`, "--net", "--", ...argv], timeoutMs);
  }

  /** Processes of the container whose program name (comm) is one of `names`. */
  async processesNamed(...names: string[]): Promise<number[]> {
    const ns = readlinkSafe(`/proc/${this.leader}/ns/pid`);
    const out: number[] = [];
    for (const entry of await readdir("/proc").catch(() => [] as string[])) {
      if (!/^\d+$/.test(entry)) continue;
      const comm = readFileSafe(`/proc/${entry}/comm`)?.trim();
      if (comm && names.includes(comm) && readlinkSafe(`/proc/${entry}/ns/pid`) === ns)
        out.push(Number(entry));
    }
    return out;
  }

  /**
   * Stops the container: SIGKILL to its init ends every process in it at once (a throwaway
   * needs no clean shutdown); nspawn then cleans up and exits, and the tmpfs goes with the
   * helper's mount namespace. If it does not exit within 5 s (or never booted), unshare is
   * killed, which kills the helper's whole pid namespace.
   */
  async stop(): Promise<void> {
    if (!this.exited) {
      if (this.leader > 0) {
        try {
          process.kill(this.leader, "SIGKILL");
        } catch {
          // already gone
        }
      } else {
        this.child.kill("SIGKILL");
      }
      const timer = setTimeout(() => this.child.kill("SIGKILL"), 5000);
      await this.exit;
      clearTimeout(timer);
    }
    // nspawn leaves its bind-propagation directory when /run is not a tmpfs or it was killed.
    await rm(`/run/systemd/nspawn/propagate/${this.options.name}`, { recursive: true, force: true });
    await rm(`${this.options.mountPoint}.nspawn-flags`, { force: true });
  }

  /**
   * nspawn's container init: the child of nspawn (the helper's pid) that runs in another pid
   * namespace and no longer runs nspawn's own program.
   */
  private async findLeader(deadline: number): Promise<number> {
    const nsOf = (pid: number) => readlinkSafe(`/proc/${pid}/ns/pid`);
    for (;;) {
      if (this.exited) throw new UserError(this.stoppedNote);
      for (const pid of await childrenOf(this.helper)) {
        const comm = readFileSafe(`/proc/${pid}/comm`)?.trim();
        const ns = nsOf(pid);
        if (ns !== undefined && ns !== nsOf(this.helper) && comm && comm !== "systemd-nspawn") return pid;
      }
      if (Date.now() > deadline) throw new UserError("systemd-nspawn did not start the container's init");
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

function envList(): string[] {
  return Object.entries({
    PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    LANG: "C.UTF-8",
    SYSTEMD_PAGER: "",
    SYSTEMD_COLORS: "0",
    TERM: "dumb",
  }).map(([k, v]) => `${k}=${v}`);
}

async function childrenOf(pid: number): Promise<number[]> {
  const tasks = await readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
  const out: number[] = [];
  for (const task of tasks) {
    const text = await readFile(`/proc/${pid}/task/${task}/children`, "utf8").catch(() => "");
    for (const word of text.split(/\s+/)) if (word) out.push(Number(word));
  }
  return out;
}

function readFileSafe(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

function readlinkSafe(path: string): string | undefined {
  try {
    return readlinkSync(path);
  } catch {
    return undefined;
  }
}
