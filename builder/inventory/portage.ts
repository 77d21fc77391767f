import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import type { PackageEntry } from "../../common/manifest.js";
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

async function readField(dir: string, name: string): Promise<string | undefined> {
  return (await readFile(join(dir, name), "utf8").catch(() => undefined))?.trim();
}

export const portageDb: Inventory = {
  name: "portage",
  async packages(root) {
    const db = join(root, "var/db/pkg");
    const out: PackageEntry[] = [];
    for (const category of (await readdir(db).catch(() => [] as string[])).sort()) {
      for (const pf of (await readdir(join(db, category)).catch(() => [] as string[])).sort()) {
        const dir = join(db, category, pf);
        if (!(await stat(dir)).isDirectory() || pf.startsWith("-MERGING-")) continue;
        const full = (await readField(dir, "PF")) ?? pf;
        const m = VERSION.exec(full);
        if (!m) continue;
        const arch = archOfChost((await readField(dir, "CHOST")) ?? "");
        out.push({ name: `${category}/${full.slice(0, m.index)}`, version: m[1]!, arch });
      }
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  },
  // Each package directory is written when the package is merged: the newest merge is the
  // date of the package set.
  async newestPackageDate(root) {
    let newest: number | undefined;
    const db = join(root, "var/db/pkg");
    for (const category of await readdir(db).catch(() => [] as string[])) {
      for (const pf of await readdir(join(db, category)).catch(() => [] as string[])) {
        const info = await stat(join(db, category, pf, "PF")).catch(() => undefined);
        if (info) newest = Math.max(newest ?? 0, Math.floor(info.mtimeMs / 1000));
      }
    }
    return newest;
  },
};
