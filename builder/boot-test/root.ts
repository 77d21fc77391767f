import { lstat, open } from "node:fs/promises";
import { posix } from "node:path";
import { UserError } from "../../common/errors.js";
import { existsInRoot, readdirInRoot, readFileInRoot, realPathInRoot } from "../rootfs.js";

/** The throwaway root a boot test starts, and what the test reads in it before booting. */

export type TestSource = { kind: "archive"; path: string } | { kind: "directory"; path: string };

/**
 * The command that fills the empty throwaway root `root` from the source: pct create's own
 * extraction for a template (numeric owners, ACLs, capabilities; /dev left empty), a copy of a
 * root directory.
 */
export function populateCommand(source: TestSource, root: string): string[] {
  if (source.kind === "directory") return ["cp", "-a", `${source.path}/.`, root];
  const compression = source.path.endsWith(".zst")
    ? ["--zstd"]
    : source.path.endsWith(".xz")
      ? ["--xz"]
      : source.path.endsWith(".gz")
        ? ["--gzip"]
        : [];
  return [
    "tar",
    "-x",
    ...compression,
    "-f",
    source.path,
    "-C",
    root,
    "--numeric-owner",
    "--preserve-permissions",
    "--sparse",
    "--acls",
    "--xattrs",
    "--xattrs-include=user.*",
    "--xattrs-include=security.capability",
    "--warning=no-file-ignored",
    "--warning=no-xattr-write",
    "--anchored",
    "--exclude=./dev/*",
  ];
}

export type OsRelease = Record<string, string>;

/** /etc/os-release (else /usr/lib/os-release) as key/value pairs, unquoted. */
export async function readOsRelease(root: string): Promise<OsRelease> {
  for (const path of ["/etc/os-release", "/usr/lib/os-release"]) {
    const text = await readFileInRoot(root, path, "utf8").catch(() => undefined);
    if (text === undefined) continue;
    const out: OsRelease = {};
    for (const line of text.split("\n")) {
      const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
      if (!m) continue;
      out[m[1]!] = m[2]!.replace(/^(["'])(.*)\1$/, "$2").replace(/\\(["'$`\\])/g, "$1");
    }
    return out;
  }
  return {};
}

export type InitKind = "systemd" | "openrc" | "sysvinit";

export interface InitInfo {
  kind: InitKind;
  /** The program nspawn --boot starts, as the root sees it. */
  path: string;
}

const HOST_MACHINE: Partial<Record<string, number>> = { x64: 62, arm64: 183 };

/**
 * The init `systemd-nspawn --boot` would start (it tries systemd's two paths, then /sbin/init)
 * and which init system it is. Throws when the template has none or has one this host cannot
 * run (another arch, a placeholder script): such a template cannot be boot-tested here.
 */
export async function detectInit(root: string): Promise<InitInfo> {
  let found: string | undefined;
  for (const path of ["/usr/lib/systemd/systemd", "/lib/systemd/systemd", "/sbin/init"]) {
    if (await existsInRoot(root, path)) {
      found = path;
      break;
    }
  }
  if (!found) throw new UserError("no init system (no /usr/lib/systemd/systemd, no /sbin/init)");
  const target = await realPathInRoot(root, found);
  const problem = await notRunnable(target);
  if (problem) throw new UserError(`its init ${found} ${problem}`);
  const real = `/${posix.relative(root, target)}`;
  if (/\/systemd$/.test(real)) return { kind: "systemd", path: found };
  if (/openrc-init$/.test(real) || (await existsInRoot(root, "/sbin/openrc")))
    return { kind: "openrc", path: found };
  return { kind: "sysvinit", path: found };
}

/** Why `file` is not a program for this host's CPU, or undefined when it is. */
async function notRunnable(file: string): Promise<string | undefined> {
  const info = await lstat(file).catch(() => undefined);
  if (!info?.isFile()) return "is missing";
  if ((info.mode & 0o111) === 0) return "is not executable";
  const handle = await open(file, "r");
  const head = Buffer.alloc(20);
  try {
    await handle.read(head, 0, 20, 0);
  } finally {
    await handle.close();
  }
  if (head.subarray(0, 4).toString("latin1") !== "\x7fELF")
    return head.subarray(0, 2).toString("latin1") === "#!"
      ? "is a script, not a program (a placeholder root?)"
      : "is not an ELF program";
  const machine = head.readUInt16LE(18);
  const want = HOST_MACHINE[process.arch];
  if (want !== undefined && machine !== want)
    return `is built for another CPU (ELF machine ${machine}; this host runs ${process.arch})`;
  return undefined;
}

/** The SSH host private keys a root holds (`ssh_host_*_key`), by file name. */
export async function sshHostKeys(root: string): Promise<string[]> {
  const names = (await readdirInRoot(root, "/etc/ssh").catch(() => [])).map((e) => e.name);
  return names.filter((n) => /^ssh_host_.*_key$/.test(n)).sort();
}
