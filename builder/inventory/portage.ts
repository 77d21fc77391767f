import type { PackageEntry } from "../../common/manifest.js";
import { readdirInRoot, readFileInRoot, statInRoot } from "../rootfs.js";
import type { Inventory } from "./inventory.js";

/**
 * Gentoo's installed-package database: one directory per package,
 * `/var/db/pkg/<category>/<name>-<version>/`, holding CATEGORY, PF and more. The name is
 * `<category>/<name>`; the version is what follows the name in PF (`5.2_p37-r1`); the arch is
 * the keyword arch of CHOST's machine (amd64, arm64), as portage names it.
 */
const VERSION = /-(\d[^-]*(?:-r\d+)?)$/;

function archOfChost(chost: string): string {
  const machine = chost.split("-")[0] ?? "";
  const map: Record<string, string> = {
    x86_64: "amd64",
    aarch64: "arm64",
    i686: "x86",
    armv7a: "arm",
    riscv64: "riscv",
  };
  return map[machine] ?? machine;
}

const DB = "/var/db/pkg";

async function readField(root: string, dir: string, name: string): Promise<string | undefined> {
  return (await readFileInRoot(root, `${dir}/${name}`, "utf8").catch(() => undefined))?.trim();
}

/** Names in the directory `dir` of the root, sorted; none when it is absent or not a directory. */
async function names(root: string, dir: string): Promise<string[]> {
  const entries = await readdirInRoot(root, dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT" || err.code === "ENOTDIR") return [];
    throw err;
  });
  return entries.map((e) => e.name).sort();
}

export const portageDb: Inventory = {
  name: "portage",
  async packages(root) {
    const out: PackageEntry[] = [];
    for (const category of await names(root, DB)) {
      for (const pf of await names(root, `${DB}/${category}`)) {
        const dir = `${DB}/${category}/${pf}`;
        if (pf.startsWith("-MERGING-")) continue;
        if (!(await statInRoot(root, dir).catch(() => undefined))?.isDirectory()) continue;
        const full = (await readField(root, dir, "PF")) ?? pf;
        const m = VERSION.exec(full);
        if (!m) continue;
        const arch = archOfChost((await readField(root, dir, "CHOST")) ?? "");
        out.push({ name: `${category}/${full.slice(0, m.index)}`, version: m[1]!, arch });
      }
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  },
  // Each package directory is written when the package is merged: the newest merge is the
  // date of the package set.
  async newestPackageDate(root) {
    let newest: number | undefined;
    for (const category of await names(root, DB)) {
      for (const pf of await names(root, `${DB}/${category}`)) {
        const info = await statInRoot(root, `${DB}/${category}/${pf}/PF`).catch(() => undefined);
        if (info) newest = Math.max(newest ?? 0, Math.floor(info.mtimeMs / 1000));
      }
    }
    return newest;
  },
};
