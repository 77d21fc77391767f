import { lstat } from "node:fs/promises";
import { type Bind, runInRoot } from "../chroot.js";
import { buildEnv } from "../exec.js";
import { lstatInRoot, replaceFile } from "../rootfs.js";
import type { StepContext } from "./step.js";

/**
 * Runs a shell script inside the root for a step: chroot with /proc, /sys and /dev in a private
 * namespace (builder/chroot.ts), the host's resolv.conf bound over the root's for name lookups
 * (the root's own file is left as it was), services kept from starting.
 */
export async function runStepScript(
  ctx: StepContext,
  what: string,
  script: string,
  binds: Bind[] = [],
): Promise<void> {
  const resolv = "/etc/resolv.conf";
  const inRoot = await lstatInRoot(ctx.root, resolv).catch(() => undefined);
  if (!inRoot) await replaceFile(ctx.root, resolv, "");
  const hostResolv = await lstat(resolv).catch(() => undefined);
  const allBinds = [...binds];
  if (hostResolv && (!inRoot || inRoot.isFile()))
    allBinds.push({ source: resolv, target: resolv, readOnly: true });
  await runInRoot(ctx.root, script, {
    what,
    binds: allBinds,
    denyServices: true,
    signal: ctx.signal,
    onLine: ctx.log,
    env: buildEnv({
      SOURCE_DATE_EPOCH: ctx.sourceDateEpoch === undefined ? undefined : String(ctx.sourceDateEpoch),
    }),
  });
}
