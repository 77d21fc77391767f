import { spawn } from "node:child_process";
import { readdir } from "node:fs/promises";
import { relative } from "node:path";
import { UserError } from "../../common/errors.js";
import type { PackageEntry } from "../../common/manifest.js";
import { hostToolEnv } from "../exec.js";
import { realPathInRoot } from "../rootfs.js";
import type { Inventory } from "./inventory.js";

/**
 * The rpm database of a RHEL-like root, read by the HOST's rpm (`rpm --root DIR`; Debian's
 * `rpm` package reads the sqlite backend that Fedora >= 33 and CentOS Stream >= 9 use, and
 * bdb read-only for older roots), so nothing of the root runs and a foreign arch works too.
 * The database is where the root keeps it: /usr/lib/sysimage/rpm (Fedora, CentOS 10) or
 * /var/lib/rpm (CentOS Stream 9, older). rpm opens `<root><dbpath>` from the host, following
 * symlinks as the host sees them, so the dbpath is resolved inside the root first (Fedora's
 * /var/lib/rpm is a link to the sysimage directory; one to an absolute path must not reach the
 * build host's database) and rpm gets the real directory, which holds no symlink either.
 */
const DB_PATHS = ["/usr/lib/sysimage/rpm", "/var/lib/rpm"];
const DB_FILES = ["rpmdb.sqlite", "Packages", "Packages.db"];

/** The database directory as a path inside the root with no symlink in it, for `--dbpath`. */
async function findDbPath(root: string): Promise<string> {
  for (const dbpath of DB_PATHS) {
    const dir = await realPathInRoot(root, dbpath);
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    if (!entries.some((e) => e.isFile() && DB_FILES.includes(e.name))) continue;
    // rpm (and sqlite: its -wal and -shm files) would follow a symlink in there from the host.
    const link = entries.find((e) => e.isSymbolicLink());
    if (link) {
      throw new UserError(
        `rpm inventory: ${dbpath}/${link.name} in the root is a symlink: refusing to let rpm read through it`,
      );
    }
    return `/${relative(root, dir)}`;
  }
  throw new UserError(`rpm inventory: no rpm database in ${DB_PATHS.join(" or ")} of the root`);
}

// %{EPOCH} is "(none)" when unset; the manifest's version is [epoch:]version-release.
const QUERY = "%{NAME}\\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\t%{ARCH}\\t%{BUILDTIME}\\n";

function rpmQuery(root: string, dbpath: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn("rpm", ["--root", root, "--dbpath", dbpath, "-qa", "--qf", QUERY], {
      stdio: ["ignore", "pipe", "pipe"],
      env: hostToolEnv(),
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString("utf8");
    });
    child.stderr.on("data", (c: Buffer) => {
      err += c.toString("utf8");
    });
    child.on("error", (e: NodeJS.ErrnoException) =>
      reject(
        new UserError(
          e.code === "ENOENT"
            ? "rpm inventory: 'rpm' is not installed on the build host (apt-get install rpm)"
            : e.message,
        ),
      ),
    );
    child.on("close", (code) => {
      if (code === 0) resolve(out);
      else
        reject(
          new UserError(`rpm inventory: rpm -qa failed: ${err.trim().split("\n").pop() ?? `exit ${code}`}`),
        );
    });
  });
}

async function query(root: string): Promise<{ entry: PackageEntry; built: number }[]> {
  const text = await rpmQuery(root, await findDbPath(root));
  return text
    .split("\n")
    .filter((line) => line !== "" && !line.startsWith("gpg-pubkey\t"))
    .map((line) => {
      const [name, version, arch, built] = line.split("\t");
      return { entry: { name: name!, version: version!, arch: arch! }, built: Number(built) || 0 };
    });
}

export const rpm: Inventory = {
  name: "rpm",
  async packages(root) {
    const rows = (await query(root)).map((r) => r.entry);
    return rows.sort((a, b) => (a.name === b.name ? a.arch.localeCompare(b.arch) : a.name < b.name ? -1 : 1));
  },
  async newestPackageDate(root) {
    const dates = (await query(root)).map((r) => r.built).filter((t) => t > 0);
    return dates.length ? Math.max(...dates) : undefined;
  },
};
