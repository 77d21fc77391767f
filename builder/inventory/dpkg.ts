import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import type { PackageEntry } from "../../common/manifest.js";
import type { Inventory } from "./inventory.js";

/**
 * Parses dpkg's status file (Debian control stanzas). Only packages whose status is
 * "<want> ok installed" count: removed-but-configured ("config-files") and half-installed
 * ones are not in the template.
 */
export function parseDpkgStatus(text: string): PackageEntry[] {
  const out: PackageEntry[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    for (const line of stanza.split("\n")) {
      const m = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(line);
      if (m) fields.set(m[1]!.toLowerCase(), m[2]!.trim());
    }
    const name = fields.get("package");
    const status = fields.get("status") ?? "";
    if (!name || !/ ok installed$/.test(status)) continue;
    out.push({ name, version: fields.get("version") ?? "", arch: fields.get("architecture") ?? "" });
  }
  return out.sort((a, b) => (a.name === b.name ? a.arch.localeCompare(b.arch) : a.name < b.name ? -1 : 1));
}

export const dpkg: Inventory = {
  name: "dpkg",
  async packages(root) {
    return parseDpkgStatus(await readFile(join(root, "var/lib/dpkg/status"), "utf8"));
  },
  // Debian packages install /usr/share/doc/<pkg>/changelog.Debian.gz with the mtime of their
  // newest changelog entry (debhelper clamps it for reproducible builds): the newest of those
  // is the date of the newest package in the set.
  async newestPackageDate(root) {
    const docs = join(root, "usr/share/doc");
    let newest: number | undefined;
    for (const pkg of await readdir(docs).catch(() => [] as string[])) {
      const info = await stat(join(docs, pkg, "changelog.Debian.gz")).catch(() => undefined);
      if (info?.isFile()) newest = Math.max(newest ?? 0, Math.floor(info.mtimeMs / 1000));
    }
    return newest;
  },
};
