import { connect } from "node:net";
import { existsInRoot } from "../rootfs.js";
import { type Container, runHost } from "./container.js";
import type { HostNetwork, StaticAddress, TestFamily } from "./families/family.js";
import type { BootState, InitSystem } from "./init.js";
import { type InitInfo, sshHostKeys } from "./root.js";

export type CheckStatus = "ok" | "failed" | "skipped";

export interface CheckResult {
  name: string;
  status: CheckStatus;
  detail: string;
  seconds: number;
}

/** What every check may read: the running container and what was set up before it started. */
export interface CheckContext {
  container: Container;
  /** The throwaway root the container runs on. */
  root: string;
  init: InitInfo;
  initSystem: InitSystem;
  family: TestFamily;
  net: StaticAddress;
  network: HostNetwork;
  hostLink: string;
  /** Every wait ends here (the test's --timeout from the container's start). */
  deadline: number;
  started: number;
  /** SSH host keys the template itself shipped (a template must ship none). */
  templateHostKeys: string[];
  /** Set by the boot check. */
  boot?: BootState;
  /** Set by the network check: the interface has its address. */
  networkUp?: boolean;
}

type Outcome = { status: CheckStatus; detail: string };

export interface Check {
  name: string;
  run(ctx: CheckContext): Promise<Outcome>;
}

const ok = (detail: string): Outcome => ({ status: "ok", detail });
const failed = (detail: string): Outcome => ({ status: "failed", detail });
const skipped = (detail: string): Outcome => ({ status: "skipped", detail });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const left = (ctx: CheckContext, floor = 3000) => Math.max(floor, ctx.deadline - Date.now());
const since = (ctx: CheckContext) => `${((Date.now() - ctx.started) / 1000).toFixed(1)} s`;
const lastLine = (text: string) =>
  text
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .at(-1) ?? "";

/** The init system finishes starting the system (systemd: running or degraded). */
const boot: Check = {
  name: "boot",
  async run(ctx) {
    const state = await ctx.initSystem.settle(ctx.container, ctx.deadline);
    ctx.boot = state;
    if (state.settled) return ok(`${ctx.init.kind}: ${state.state} after ${since(ctx)}`);
    const pending = ctx.container.running ? await ctx.initSystem.pending(ctx.container, ctx.deadline) : [];
    const waiting = pending.length ? `; still starting: ${pending.slice(0, 5).join(", ")}` : "";
    return failed(`${ctx.init.kind} did not finish booting (${state.state}) after ${since(ctx)}${waiting}`);
  },
};

/** No unit or service failed during boot. */
const units: Check = {
  name: "units",
  async run(ctx) {
    if (!ctx.container.running) return failed(ctx.container.stoppedNote);
    const list = await ctx.initSystem.failed(ctx.container, ctx.deadline);
    if (list === undefined) return skipped(`${ctx.init.kind} does not track failed services`);
    if (list.length === 0) return ok("no failed units");
    const why = ctx.init.kind === "systemd" ? await lastWords(ctx, list[0]!) : "";
    return failed(`${list.length} failed: ${list.join(", ")}${why}`);
  },
};

/**
 * The last thing a failed unit's own processes logged (" (unit: message)"), else systemd's last
 * word on it: "ifup: not found" tells more than "Failed to start networking.service".
 */
async function lastWords(ctx: CheckContext, unit: string): Promise<string> {
  const r = await ctx.container.exec(
    ["journalctl", "--boot", "--no-pager", "--output=json", "--lines=20", `--unit=${unit}`],
    left(ctx),
  );
  const entries = r.stdout
    .split("\n")
    .filter((l) => l.trim())
    .map((l) => {
      try {
        return JSON.parse(l) as { MESSAGE?: unknown; _PID?: unknown };
      } catch {
        return {};
      }
    })
    .filter(
      (e): e is { MESSAGE: string; _PID?: unknown } =>
        typeof e.MESSAGE === "string" && e.MESSAGE.trim() !== "",
    );
  const own = entries.filter((e) => e._PID !== "1").at(-1) ?? entries.at(-1);
  return own ? ` (${unit}: ${own.MESSAGE.trim()})` : "";
}

/** The interface gets the static address (and default route) the host wrote into the root. */
const network: Check = {
  name: "network",
  async run(ctx) {
    const { iface, address, prefix, gateway } = ctx.net;
    const want = `${address}/${prefix}`;
    let seen = "";
    for (;;) {
      const r = await ctx.container.execInNetwork(
        ["ip", "-4", "-o", "addr", "show", "dev", iface],
        left(ctx),
      );
      seen = r.stdout;
      if (seen.includes(` ${want} `) || !ctx.container.running) break;
      // A problem known before boot (no ifup, no NetworkManager) is not worth waiting for.
      if (ctx.network.problem || Date.now() > ctx.deadline) break;
      await sleep(200);
    }
    if (!seen.includes(` ${want} `)) {
      const link = await ctx.container.execInNetwork(["ip", "-o", "link", "show", "dev", iface], left(ctx));
      const state = /\bstate (\S+)/.exec(link.stdout)?.[1] ?? "unknown";
      const why =
        ctx.network.problem ?? `${iface} is ${state}${/inet /.test(seen) ? `, has ${addresses(seen)}` : ""}`;
      return failed(`${iface} did not get ${want} from ${ctx.network.describe} after ${since(ctx)}: ${why}`);
    }
    ctx.networkUp = true;
    const route = await ctx.container.execInNetwork(["ip", "-4", "route", "show", "default"], left(ctx));
    if (!route.stdout.includes(`via ${gateway} `))
      return failed(`${iface} has ${want} but no default route via ${gateway} (${ctx.network.describe})`);
    const others = await otherNetworkManagers(ctx);
    if (others.length > 0)
      return failed(
        `${others.join(", ")} ${others.length > 1 ? "run" : "runs"} beside ${ctx.network.service}: ` +
          `more than one program manages ${iface}`,
      );
    return ok(`${iface} has ${want}, default via ${gateway} (${ctx.network.describe})`);
  },
};

/** Network managers the template runs besides the one that applies the host's configuration. */
async function otherNetworkManagers(ctx: CheckContext): Promise<string[]> {
  if (ctx.init.kind !== "systemd" || !ctx.network.service) return [];
  const managers = [
    "networking.service",
    "systemd-networkd.service",
    "NetworkManager.service",
    "network.service",
    "connman.service",
  ];
  const r = await ctx.container.exec(["systemctl", "is-active", ...managers], left(ctx));
  const states = r.stdout.split("\n");
  return managers.filter((unit, i) => states[i]?.trim() === "active" && unit !== ctx.network.service);
}

function addresses(ipAddrOutput: string): string {
  return [...ipAddrOutput.matchAll(/inet (\S+)/g)].map((m) => m[1]).join(", ");
}

/** The host reaches the container's address over the veth pair. */
const ping: Check = {
  name: "ping",
  async run(ctx) {
    const { address } = ctx.net;
    for (let attempt = 1; ; attempt++) {
      const r = await runHost("ping", ["-n", "-c", "1", "-W", "1", "-I", ctx.hostLink, address], 5000);
      if (r.code === 0) {
        const time = /time=(\S+ ms)/.exec(r.stdout)?.[1];
        return ok(`${address} answers the host over ${ctx.hostLink}${time ? ` (${time})` : ""}`);
      }
      // Without its address (the network check failed) three tries tell enough.
      if ((attempt >= 3 && (Date.now() > ctx.deadline || !ctx.networkUp)) || !ctx.container.running)
        return failed(`${address} does not answer ping from the host over ${ctx.hostLink}`);
      await sleep(200);
    }
  },
};

/** sshd answers on port 22 with host keys made at this boot, by exactly one ssh-keygen run. */
const sshd: Check = {
  name: "sshd",
  async run(ctx) {
    if (!(await existsInRoot(ctx.root, "/usr/sbin/sshd"))) return skipped("the template has no sshd");
    if (ctx.templateHostKeys.length > 0)
      return failed(
        `the template ships SSH host keys (${ctx.templateHostKeys.join(", ")}): every container made from it shares them`,
      );
    let banner: string | undefined;
    for (;;) {
      banner = await sshBanner(ctx.net.address, 3000);
      if (banner || Date.now() > ctx.deadline || !ctx.container.running) break;
      await sleep(250);
    }
    if (!banner) return failed(`nothing answers SSH on ${ctx.net.address}:22 after ${since(ctx)}`);
    const keys = await sshHostKeys(ctx.root);
    if (keys.length === 0) return failed(`port 22 answers (${banner}) but /etc/ssh has no host keys`);
    const kinds = keys.map((k) => k.replace(/^ssh_host_(.*)_key$/, "$1")).join(", ");
    let runs = "";
    if (ctx.initSystem.logOf) {
      const log = await ctx.initSystem.logOf(ctx.container, "ssh-keygen", ctx.deadline);
      const generated = log.filter((e) => /generating new host keys/i.test(e.message));
      const by = [...new Set(generated.map((e) => e.unit))].join(", ");
      if (generated.length > 1)
        return failed(
          `ssh-keygen generated host keys ${generated.length} times at boot (${by}): one unit must own host key generation`,
        );
      runs = generated.length === 1 ? `, by one ssh-keygen run (${by})` : ", by no logged ssh-keygen -A run";
    }
    return ok(`port 22 answers (${banner}); host keys made at boot: ${kinds}${runs}`);
  },
};

/** The first line a server sends on port 22, if it is an SSH banner. */
function sshBanner(host: string, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ host, port: 22 });
    let data = "";
    const done = (value: string | undefined) => {
      socket.destroy();
      resolve(value);
    };
    socket.setTimeout(timeoutMs, () => done(undefined));
    socket.on("data", (chunk: Buffer) => {
      data += chunk.toString("latin1");
      const line = data.split(/\r?\n/)[0]!;
      if (data.includes("\n")) done(line.startsWith("SSH-") ? line : undefined);
    });
    socket.on("error", () => done(undefined));
    socket.on("end", () => done(undefined));
  });
}

/** With D-Bus in the template, systemd's tools that need it answer (hostnamectl, ...). */
const dbus: Check = {
  name: "dbus",
  async run(ctx) {
    if (ctx.init.kind !== "systemd") return skipped(`not checked under ${ctx.init.kind}`);
    const bus =
      (await existsInRoot(ctx.root, "/usr/bin/dbus-daemon")) ||
      (await existsInRoot(ctx.root, "/usr/bin/dbus-broker"));
    if (!bus) return skipped("the template has no D-Bus (hostnamectl, timedatectl and loginctl need it)");
    for (const argv of [
      ["hostnamectl", "status"],
      ["timedatectl", "status"],
      ["loginctl", "list-sessions"],
    ]) {
      const r = await ctx.container.exec(argv, left(ctx));
      if (r.code !== 0) return failed(`${argv.join(" ")}: ${lastLine(r.stderr) || `exit ${r.code}`}`);
    }
    return ok("hostnamectl, timedatectl and loginctl answer over D-Bus");
  },
};

/** The package manager's own offline self-check passes. */
const packages: Check = {
  name: "packages",
  async run(ctx) {
    const check = await ctx.family.packageCheck(ctx.root);
    if (!check) return skipped("no package manager found");
    const r = await ctx.container.exec(["/bin/sh", "-c", check.script], left(ctx, 30_000));
    if (r.code === 0) return ok(`${check.describe}: no problems`);
    return failed(`${check.describe}: ${lastLine(r.stdout + r.stderr) || `exit ${r.code}`}`);
  },
};

/** The checks, in the order they run and are reported. */
export const checks: Check[] = [boot, units, network, ping, sshd, dbus, packages];
