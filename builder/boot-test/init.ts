import type { Container } from "./container.js";
import type { InitKind } from "./root.js";

/** Where boot stands: `settled` once the init has finished starting the system. */
export interface BootState {
  settled: boolean;
  /** systemd's state word (running, degraded, ...), the openrc runlevel, or why it is unknown. */
  state: string;
}

/**
 * What the boot test asks of an init system, read from inside the running container. One
 * implementation per init, in the table below.
 */
export interface InitSystem {
  /** Waits (until `deadline`) for the boot to finish. */
  settle(c: Container, deadline: number): Promise<BootState>;
  /** Units or services that failed; undefined when this init does not track failures. */
  failed(c: Container, deadline: number): Promise<string[] | undefined>;
  /** What still runs when boot did not finish (systemd's jobs), for the error message. */
  pending(c: Container, deadline: number): Promise<string[]>;
  /** This boot's log lines from programs named `identifier`, with the unit that ran each. */
  logOf?(c: Container, identifier: string, deadline: number): Promise<{ message: string; unit: string }[]>;
}

const remaining = (deadline: number, floor = 2000) => Math.max(floor, deadline - Date.now());
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const firstWords = (text: string) =>
  text
    .split("\n")
    .map((l) => l.trim().split(/\s+/)[0] ?? "")
    .filter(Boolean);

const systemd: InitSystem = {
  async settle(c, deadline) {
    for (;;) {
      if (!c.running) return { settled: false, state: c.stoppedNote };
      // --wait returns once boot is over; before systemd's own bus is up it fails at once.
      const r = await c.exec(["systemctl", "is-system-running", "--wait"], remaining(deadline, 500));
      const state = r.stdout.trim().split("\n").at(-1) ?? "";
      if (state === "running" || state === "degraded") return { settled: true, state };
      if (state === "maintenance" || state === "stopping") return { settled: false, state };
      if (r.timedOut || Date.now() > deadline) return { settled: false, state: state || "starting" };
      await sleep(100);
    }
  },
  async failed(c, deadline) {
    const r = await c.exec(
      ["systemctl", "list-units", "--state=failed", "--all", "--plain", "--no-legend", "--no-pager"],
      remaining(deadline),
    );
    return r.code === 0 ? firstWords(r.stdout) : [`(systemctl list-units failed: ${r.stderr.trim()})`];
  },
  async pending(c, deadline) {
    const r = await c.exec(
      ["systemctl", "list-jobs", "--plain", "--no-legend", "--no-pager"],
      remaining(deadline),
    );
    return r.stdout
      .split("\n")
      .map((l) => l.trim().split(/\s+/)[1] ?? "")
      .filter(Boolean);
  },
  async logOf(c, identifier, deadline) {
    const r = await c.exec(
      ["journalctl", "--boot", "--no-pager", "--output=json", `SYSLOG_IDENTIFIER=${identifier}`],
      remaining(deadline),
    );
    const out: { message: string; unit: string }[] = [];
    for (const line of r.stdout.split("\n")) {
      if (!line.trim()) continue;
      try {
        const entry = JSON.parse(line) as { MESSAGE?: unknown; _SYSTEMD_UNIT?: unknown };
        const message = typeof entry.MESSAGE === "string" ? entry.MESSAGE : "";
        out.push({ message, unit: typeof entry._SYSTEMD_UNIT === "string" ? entry._SYSTEMD_UNIT : "?" });
      } catch {
        // a partial line at the end of a cut-off read
      }
    }
    return out;
  },
};

const openrc: InitSystem = {
  async settle(c, deadline) {
    for (;;) {
      if (!c.running) return { settled: false, state: c.stoppedNote };
      const r = await c.exec(["rc-status", "--runlevel"], remaining(deadline));
      const level = r.stdout.trim();
      // `openrc default` runs until every service of the runlevel has started or failed.
      if (level === "default" && (await c.processesNamed("openrc", "rc")).length === 0)
        return { settled: true, state: "runlevel default" };
      if (Date.now() > deadline) return { settled: false, state: level ? `runlevel ${level}` : "starting" };
      await sleep(200);
    }
  },
  async failed(c, deadline) {
    const r = await c.exec(["rc-status", "--all", "--nocolor"], remaining(deadline));
    return r.stdout
      .split("\n")
      .map((l) => /^\s*(\S+)\s+\[\s*(crashed|failed)\s*\]/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => `${m[1]} (${m[2]})`);
  },
  async pending(c, deadline) {
    const r = await c.exec(["rc-status", "--all", "--nocolor"], remaining(deadline));
    return r.stdout
      .split("\n")
      .map((l) => /^\s*(\S+)\s+\[\s*starting\s*\]/.exec(l)?.[1])
      .filter((s): s is string => s !== undefined);
  },
};

const sysvinit: InitSystem = {
  async settle(c, deadline) {
    for (;;) {
      if (!c.running) return { settled: false, state: c.stoppedNote };
      const r = await c.exec(["runlevel"], remaining(deadline));
      const level = r.stdout.trim().split(/\s+/)[1] ?? "";
      if (/^[2-5]$/.test(level) && (await c.processesNamed("rc", "startpar")).length === 0)
        return { settled: true, state: `runlevel ${level}` };
      if (Date.now() > deadline) return { settled: false, state: level ? `runlevel ${level}` : "starting" };
      await sleep(200);
    }
  },
  async failed() {
    return undefined;
  },
  async pending() {
    return [];
  },
};

/** The ONE table of init systems the boot test can read. */
export const initSystems: Record<InitKind, InitSystem> = { systemd, openrc, sysvinit };
