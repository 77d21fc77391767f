import { UserError } from "../../common/errors.js";
import type { PackageEntry } from "../../common/manifest.js";
import { readdirInRoot, readFileInRoot, statInRoot } from "../rootfs.js";
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
    const status = "/var/lib/dpkg/status";
    const text = await readFileInRoot(root, status, "utf8").catch((err: NodeJS.ErrnoException) => {
      throw new UserError(`dpkg inventory: cannot read ${status} of the root: ${err.code ?? err.message}`);
    });
    return parseDpkgStatus(text);
  },
  // Debian packages install /usr/share/doc/<pkg>/changelog.Debian.gz with the mtime of their
  // newest changelog entry (debhelper clamps it for reproducible builds): the newest of those
  // is the date of the newest package in the set.
  async newestPackageDate(root) {
    let newest: number | undefined;
    for (const pkg of await readdirInRoot(root, "/usr/share/doc").catch(() => [])) {
      const changelog = `/usr/share/doc/${pkg.name}/changelog.Debian.gz`;
      const info = await statInRoot(root, changelog).catch(() => undefined);
      if (info?.isFile()) newest = Math.max(newest ?? 0, Math.floor(info.mtimeMs / 1000));
    }
    return newest;
  },
};
