import type { PackageManager } from "./family.js";

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * Portage inside the root (Gentoo): the ebuild repository is synced first when absent (stage3
 * tarballs ship without it); binary packages are preferred (`--getbinpkg`) so a template build
 * does not compile the world. Downloaded sources and binaries land in /var/cache, kept on the
 * host between builds.
 */
export const portage: PackageManager = {
  name: "portage",
  installScript: (packages) =>
    `{ [ -d /var/db/repos/gentoo/profiles ] || emerge-webrsync -q; } && ` +
    `emerge --quiet --noreplace --getbinpkg --usepkg ${packages.map(quote).join(" ")}`,
  removeScript: (packages) => `emerge --quiet --depclean ${packages.map(quote).join(" ")}`,
  archiveDir: "/var/cache/binpkgs",
  cacheSubdir: "gentoo/binpkgs",
};
