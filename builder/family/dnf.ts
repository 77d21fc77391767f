import type { PackageManager } from "./family.js";

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
const DNF = "dnf -y --setopt=install_weak_deps=False --setopt=keepcache=True";

/**
 * dnf inside the root (Fedora, CentOS Stream, other RHEL-likes); microdnf where dnf is absent
 * (minimal images). Packages are checked by dnf against the repositories' keys (gpgcheck in
 * the image's own repo files). Metadata is removed afterwards (`dnf clean all` in the preset).
 */
export const dnf: PackageManager = {
  name: "dnf",
  installScript: (packages) =>
    `if command -v dnf >/dev/null; then ${DNF} install ${packages.map(quote).join(" ")}; ` +
    `else microdnf -y --setopt=install_weak_deps=0 install ${packages.map(quote).join(" ")}; fi`,
  removeScript: (packages) =>
    `if command -v dnf >/dev/null; then dnf -y remove ${packages.map(quote).join(" ")}; ` +
    `else microdnf -y remove ${packages.map(quote).join(" ")}; fi`,
  archiveDir: "/var/cache/dnf",
  cacheSubdir: "dnf",
};
