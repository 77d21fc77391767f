import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { errorMessage, UserError } from "../../common/errors.js";
import { pathInRoot } from "../rootfs.js";
import { containerNames, pickAddress } from "./address.js";
import { type CheckContext, type CheckResult, checks } from "./checks.js";
import { Container, hostProblem, runHost } from "./container.js";
import { testFamilyFor } from "./families/index.js";
import { initSystems } from "./init.js";
import {
  detectInit,
  type InitKind,
  populateCommand,
  readOsRelease,
  sshHostKeys,
  type TestSource,
} from "./root.js";

/**
 * The boot test: a template booted the way a container host would start it, in a throwaway
 * systemd-nspawn container, and checked from inside and from the host (./checks.ts).
 */

export interface BootTestTarget {
  /** What the messages call it (a file name, a template name). */
  label: string;
  source: TestSource;
  /** The manifest's `distro`, when there is one (else os-release decides the family). */
  distro?: string;
}

export interface BootTestOptions {
  /** Seconds from the container's start for boot, network and sshd to be up (default 60). */
  timeoutSeconds?: number;
  /** Where the throwaway root is made (default os.tmpdir()). */
  workParent?: string;
  signal?: AbortSignal;
  /** What is booted and how its network was configured, once the container runs. */
  onStart?: (info: BootTestStart) => void;
  /** Each check's result as soon as it is known. */
  onCheck?: (result: CheckResult) => void;
  /** The container's console output. */
  onLine?: (line: string) => void;
}

export interface BootTestStart {
  template: string;
  family: string;
  /** os-release PRETTY_NAME (or ID). */
  os: string;
  init: InitKind;
  /** What the host wrote for the network and which address it gave. */
  network: string;
  address: string;
}

export interface BootTestReport extends BootTestStart {
  checks: CheckResult[];
  ok: boolean;
  /** Names of the failed checks. */
  failed: string[];
  seconds: number;
}

export const DEFAULT_TEST_TIMEOUT = 60;

/**
 * Boots one template and runs every check. Resolves to the report (failed checks included);
 * throws a UserError only when the template cannot be tested at all here (not root, no
 * systemd-nspawn, no runnable init, unknown distro): never a silent pass.
 */
export async function bootTest(
  target: BootTestTarget,
  options: BootTestOptions = {},
): Promise<BootTestReport> {
  const started = Date.now();
  const cannot = (why: string) => new UserError(`cannot boot-test ${target.label}: ${why}`);
  const problem = hostProblem();
  if (problem) throw cannot(problem);
  const signal = options.signal ?? new AbortController().signal;
  const work = await mkdtemp(join(options.workParent ?? tmpdir(), "templar-boot-test-"));
  let container: Container | undefined;
  const onAbort = () => void container?.stop();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    const mountPoint = join(work, "rootfs");
    await mkdir(mountPoint, { mode: 0o755 });
    const { name, hostLink } = containerNames();
    container = await Container.create(
      {
        mountPoint,
        populate: populateCommand(target.source, mountPoint),
        name,
        hostLink,
        onLine: options.onLine,
      },
      signal,
    ).catch((err: unknown) => {
      if (signal.aborted) throw new UserError("interrupted", 130);
      throw new UserError(`${target.label}: ${errorMessage(err)}`);
    });
    if (signal.aborted) throw new UserError("interrupted", 130);
    const root = container.root;
    const os = await readOsRelease(root);
    const init = await detectInit(root).catch((err: unknown) => {
      throw cannot(errorMessage(err));
    });
    const family = (() => {
      try {
        return testFamilyFor(target.distro, os);
      } catch (err) {
        throw cannot(errorMessage(err));
      }
    })();
    const templateHostKeys = await sshHostKeys(root);

    // What pct create does before the first start: the container's network configuration,
    // and no /etc/machine-id, so that systemd treats the start as the first boot (presets
    // are applied, ConditionFirstBoot= units run).
    const net = await pickAddress();
    const network = await family.configureNetwork(root, os, init, net);
    await rm(await pathInRoot(root, "/etc/machine-id"), { force: true });

    const timeout = (options.timeoutSeconds ?? DEFAULT_TEST_TIMEOUT) * 1000;
    const containerStarted = Date.now();
    const deadline = containerStarted + timeout;
    await container.boot(deadline);
    if (signal.aborted) throw new UserError("interrupted", 130);
    await configureHostLink(hostLink, net.gateway, net.prefix, deadline, container);

    const start: BootTestStart = {
      template: target.label,
      family: family.name,
      os: os.PRETTY_NAME ?? os.ID ?? "unknown",
      init: init.kind,
      network: network.describe,
      address: `${net.address}/${net.prefix}`,
    };
    options.onStart?.(start);
    const ctx: CheckContext = {
      container,
      root,
      init,
      initSystem: initSystems[init.kind],
      family,
      net,
      network,
      hostLink,
      deadline,
      started: containerStarted,
      templateHostKeys,
    };
    const results: CheckResult[] = [];
    for (const check of checks) {
      if (signal.aborted) throw new UserError("interrupted", 130);
      const t0 = Date.now();
      const outcome = await check.run(ctx).catch((err: unknown) => ({
        status: "failed" as const,
        detail: errorMessage(err),
      }));
      // An interrupted test reports nothing more: the checks failed because the container went.
      if (signal.aborted) throw new UserError("interrupted", 130);
      const result: CheckResult = { name: check.name, ...outcome, seconds: (Date.now() - t0) / 1000 };
      results.push(result);
      options.onCheck?.(result);
    }
    if (signal.aborted) throw new UserError("interrupted", 130);
    const failedChecks = results.filter((r) => r.status === "failed").map((r) => r.name);
    return {
      ...start,
      checks: results,
      ok: failedChecks.length === 0,
      failed: failedChecks,
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    signal.removeEventListener("abort", onAbort);
    await container?.stop();
    await removeWork(work);
  }
}

/**
 * One line naming every failed check with what it found ("units: 1 failed: ...; network: ..."):
 * a missing ifup, for one, fails networking.service (units) and leaves eth0 down (network).
 */
export function failureLine(report: BootTestReport): string {
  const failed = report.checks.filter((c) => c.status === "failed");
  if (failed.length === 0) return "boot test passed";
  return `boot test failed: ${failed.map((c) => `${c.name}: ${c.detail}`).join("; ")}`;
}

/** The host end of the veth pair: the gateway address, up. nspawn creates it before init runs. */
async function configureHostLink(
  link: string,
  gateway: string,
  prefix: number,
  deadline: number,
  container: Container,
): Promise<void> {
  while (!existsSync(`/sys/class/net/${link}`)) {
    if (Date.now() > deadline || !container.running)
      throw new UserError(`the host end of the container's veth pair (${link}) did not appear`);
    await new Promise((r) => setTimeout(r, 20));
  }
  for (const args of [
    ["addr", "add", `${gateway}/${prefix}`, "dev", link],
    ["link", "set", link, "up"],
  ]) {
    const r = await runHost("ip", args, 5000);
    if (r.code !== 0) throw new UserError(`ip ${args.join(" ")}: ${r.stderr.trim()}`);
  }
}

/**
 * The work directory holds only the (empty) mount point: the tmpfs lived in the helper's mount
 * namespace and went with it. `--one-file-system` makes sure a mount can never take host files.
 */
async function removeWork(work: string): Promise<void> {
  spawnSync("rm", ["-rf", "--one-file-system", work]);
  if ((await readdir(work).catch(() => null)) !== null)
    process.stderr.write(`templar: warning: could not remove boot test directory ${work}\n`);
}
