import { readdir, rm, truncate } from "node:fs/promises";
import {
  emptyDirInRoot,
  existsInRoot,
  joinInRoot,
  lstatInRoot,
  readdirInRoot,
  readFileInRoot,
  realPathInRoot,
  removeInRoot,
  replaceFile,
  replaceSymlink,
  rewriteFileInRoot,
} from "../../rootfs.js";

/**
 * The parts of the container checklist (what DAB, vzctl and pve-container do to make a rootfs
 * container-ready) that are the same for every Linux family. Family presets call these and
 * add their own (network config, package caches, locale file).
 */

/** Identity a container gets at creation: hostname, hosts, resolv.conf, machine-id, fstab, mtab. */
export async function resetIdentity(root: string): Promise<void> {
  await replaceFile(root, "/etc/hostname", "localhost\n");
  await replaceFile(
    root,
    "/etc/hosts",
    "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n",
  );
  await replaceFile(root, "/etc/resolv.conf", "");
  // Empty (not absent): systemd then generates one at first boot and treats it as first boot.
  await replaceFile(root, "/etc/machine-id", "", 0o444);
  if ((await lstatInRoot(root, "/var/lib/dbus/machine-id").catch(() => undefined))?.isFile())
    await removeInRoot(root, "/var/lib/dbus/machine-id");
  await replaceFile(root, "/etc/fstab", "");
  await replaceSymlink(root, "/etc/mtab", "/proc/mounts");
  await removeInRoot(root, "/var/lib/systemd/random-seed");
}

/** Host keys are made at container creation (vzctl, pve) or first boot, never shared. */
export async function removeSshHostKeys(root: string): Promise<void> {
  await emptyDirInRoot(root, "/etc/ssh", (name) => !name.startsWith("ssh_host_"));
}

/** `usermod -L root` without running anything in the root: a '!' in front of the hash. */
export async function lockRoot(root: string): Promise<void> {
  const text = await readFileInRoot(root, "/etc/shadow", "utf8").catch(() => undefined);
  if (text === undefined) return;
  const locked = text.replace(
    /^root:([^:\n]*)/m,
    (_m, hash: string) => `root:${hash.startsWith("!") ? hash : `!${hash}`}`,
  );
  if (locked !== text) await rewriteFileInRoot(root, "/etc/shadow", locked);
}

export async function utcLocaltime(root: string): Promise<void> {
  await replaceSymlink(root, "/etc/localtime", "/usr/share/zoneinfo/Etc/UTC");
}

// Units a container cannot use: udev and hardware, kernel filesystems, audit, modules, VTs.
const MASKED_UNITS = [
  "systemd-udevd.service",
  "systemd-udevd-control.socket",
  "systemd-udevd-kernel.socket",
  "systemd-udev-trigger.service",
  "systemd-udev-settle.service",
  "systemd-hwdb-update.service",
  "systemd-modules-load.service",
  "kmod-static-nodes.service",
  "sys-kernel-config.mount",
  "sys-kernel-debug.mount",
  "sys-kernel-tracing.mount",
  "sys-fs-fuse-connections.mount",
  "dev-hugepages.mount",
  "proc-sys-fs-binfmt_misc.automount",
  "systemd-journald-audit.socket",
  "systemd-firstboot.service",
];
const TTYS = [1, 2, 3, 4, 5, 6];

/**
 * systemd: mask hardware units and the gettys on tty1-6 (getty@ and logind's autovt@), turn off
 * logind's automatic VTs. The console stays: systemd starts console-getty in a container.
 */
export async function systemdForContainers(root: string): Promise<boolean> {
  if (
    !(await existsInRoot(root, "/lib/systemd/systemd")) &&
    !(await existsInRoot(root, "/usr/lib/systemd/systemd"))
  ) {
    return false;
  }
  const units = [
    ...MASKED_UNITS,
    ...TTYS.flatMap((n) => [`getty@tty${n}.service`, `autovt@tty${n}.service`]),
  ];
  for (const unit of units) await replaceSymlink(root, `/etc/systemd/system/${unit}`, "/dev/null");
  await emptyDirInRoot(
    root,
    "/etc/systemd/system/getty.target.wants",
    (name) => !/^getty@tty\d+\.service$/.test(name),
  );
  await replaceFile(
    root,
    "/etc/systemd/logind.conf.d/90-templar-container.conf",
    "[Login]\nNAutoVTs=0\nReserveVT=0\n",
  );
  return true;
}

/** sysvinit: comment out the tty1-6 gettys in /etc/inittab and keep (or add) one on the console. */
export async function inittabForContainers(root: string): Promise<boolean> {
  const text = await readFileInRoot(root, "/etc/inittab", "utf8").catch(() => undefined);
  if (text === undefined) return false;
  let lines = text.split("\n").map((line) => (/^[^#].*getty.*\btty[1-6]\b/.test(line) ? `#${line}` : line));
  if (!lines.some((line) => /^[^#].*getty.*\bconsole\b/.test(line))) {
    lines = [
      ...lines.filter((l, i) => i < lines.length - 1 || l !== ""),
      "co:2345:respawn:/sbin/getty --noclear 38400 console",
      "",
    ];
  }
  await rewriteFileInRoot(root, "/etc/inittab", lines.join("\n"));
  return true;
}

/** Logs kept as empty files (owners and modes stay), rotated ones removed. */
export async function truncateLogs(root: string): Promise<void> {
  // Below the resolved /var/log, only real directories are entered and only regular files
  // touched (the entry types are lstat's: a symlink is neither).
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const path = joinInRoot(dir, [entry.name]);
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile()) {
        if (/\.(\d+|gz|xz|old)$/.test(entry.name)) await rm(path);
        else await truncate(path, 0);
      }
    }
  };
  await walk(await realPathInRoot(root, "/var/log"));
}

/** Shell histories, temporary files and caches that differ on every run (reproducibility). */
export async function removeRunLeftovers(root: string): Promise<void> {
  const homes = [
    "/root",
    ...(await readdirInRoot(root, "/home").catch(() => [])).map((h) => `/home/${h.name}`),
  ];
  for (const home of homes) {
    for (const file of [
      ".bash_history",
      ".ash_history",
      ".history",
      ".lesshst",
      ".viminfo",
      ".python_history",
    ]) {
      await removeInRoot(root, `${home}/${file}`);
    }
  }
  for (const dir of ["/tmp", "/var/tmp"]) await emptyDirInRoot(root, dir);
  await removeInRoot(root, "/var/cache/ldconfig/aux-cache");
}

/**
 * Clamps the "last password change" day in /etc/shadow (and its backup) to SOURCE_DATE_EPOCH,
 * as mtimes are: useradd writes the build day when the tool ran without SOURCE_DATE_EPOCH
 * (the default epoch is only known once the packages are installed).
 */
export async function clampShadowDates(root: string, sourceDateEpoch: number): Promise<void> {
  const day = Math.floor(sourceDateEpoch / 86400);
  for (const file of ["/etc/shadow", "/etc/shadow-"]) {
    const text = await readFileInRoot(root, file, "utf8").catch(() => undefined);
    if (text === undefined) continue;
    const clamped = text.replace(/^([^:\n]*:[^:\n]*:)(\d+)(?=:)/gm, (m, head: string, days: string) =>
      Number(days) > day ? `${head}${day}` : m,
    );
    if (clamped !== text) await rewriteFileInRoot(root, file, clamped);
  }
}

/** What every family's preset does first: identity, ssh host keys, root locked, UTC. */
export async function containerBaseline(root: string): Promise<void> {
  await resetIdentity(root);
  await removeSshHostKeys(root);
  await lockRoot(root);
  await utcLocaltime(root);
}
