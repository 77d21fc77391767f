import { readFileSync } from "node:fs";
import { relative } from "node:path";
import { type RunOptions, runTool } from "./exec.js";
import { existsInRoot, pathInRoot, removeInRoot, replaceFile } from "./rootfs.js";

/**
 * Running commands inside a rootfs. Everything runs under
 * `unshare --mount --pid --fork --kill-child`: /proc, /sys, /dev and any bind mount exist only
 * in that private mount namespace, so they vanish with the process, whatever happens to it
 * (failure, Ctrl-C, SIGKILL of templar). The host never sees them; `findmnt` stays clean.
 */

/** Prefix that gives `argv` its own mount and pid namespaces, killed when templar dies. */
export function isolated(argv: string[]): [string, string[]] {
  return [
    "unshare",
    ["--mount", "--propagation", "private", "--pid", "--fork", "--kill-child", "--", ...argv],
  ];
}

export interface Bind {
  /** Host path. */
  source: string;
  /** Path inside the root (must exist there; a file or directory as `source` is). */
  target: string;
  readOnly?: boolean;
}

export interface ChrootOptions extends RunOptions {
  binds?: Bind[];
  /** Keep services from starting while packages are installed (policy-rc.d exits 101). */
  denyServices?: boolean;
}

// Mounts /proc, /sys and a minimal /dev (tmpfs with the usual nodes; the host's /dev is not
// exposed), then the requested binds, then runs the script with the root as `/`.
const SETUP = `set -e
r="$1"; script="$2"; shift 2
mount -t proc -o nosuid,nodev,noexec proc "$r/proc"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$r/sys"
mount -t tmpfs -o mode=755,nosuid tmpfs "$r/dev"
mknod -m 666 "$r/dev/null" c 1 3; mknod -m 666 "$r/dev/zero" c 1 5; mknod -m 666 "$r/dev/full" c 1 7
mknod -m 666 "$r/dev/random" c 1 8; mknod -m 666 "$r/dev/urandom" c 1 9; mknod -m 666 "$r/dev/tty" c 5 0
mkdir -m 755 "$r/dev/pts"; mkdir -m 1777 "$r/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$r/dev/pts"
ln -s pts/ptmx "$r/dev/ptmx"; ln -s /proc/self/fd "$r/dev/fd"
ln -s /proc/self/fd/0 "$r/dev/stdin"; ln -s /proc/self/fd/1 "$r/dev/stdout"; ln -s /proc/self/fd/2 "$r/dev/stderr"
while [ $# -gt 0 ]; do
  mount --bind "$1" "$r/$2"; [ "$3" = ro ] && mount -o remount,bind,ro "$r/$2"; shift 3
done
exec chroot "$r" /bin/sh -c "$script"
`;

export async function runInRoot(root: string, script: string, options: ChrootOptions): Promise<void> {
  // Targets are resolved as the root sees them, so a symlink in the root cannot redirect a bind.
  const bindArgs: string[] = [];
  for (const b of options.binds ?? []) {
    const target = relative(root, await pathInRoot(root, b.target));
    bindArgs.push(b.source, target, b.readOnly ? "ro" : "rw");
  }
  const policy = "/usr/sbin/policy-rc.d";
  const addPolicy = options.denyServices && !(await existsInRoot(root, policy));
  if (addPolicy)
    await replaceFile(
      root,
      policy,
      "#!/bin/sh\n# templar: no services start during a build\nexit 101\n",
      0o755,
    );
  try {
    const [cmd, args] = isolated(["/bin/sh", "-c", SETUP, "setup", root, script, ...bindArgs]);
    await runTool(cmd, args, options);
  } finally {
    if (addPolicy) await removeInRoot(root, policy);
  }
}

/** Mount points at or below `dir` in templar's own mount namespace (from /proc/self/mountinfo). */
export function mountsUnder(dir: string): string[] {
  const prefix = dir.endsWith("/") ? dir : `${dir}/`;
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((line) => line.split(" ")[4])
    .filter((m): m is string => m !== undefined)
    .map((m) => m.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8))))
    .filter((m) => m === dir || m.startsWith(prefix));
}
