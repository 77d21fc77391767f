import type { PackageManager } from "./family.js";

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
const APT =
  "apt-get -y -q -o APT::Sandbox::User=root -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold";

/** apt-get inside the root. Indices are refreshed first (the source step removed them). */
export const apt: PackageManager = {
  name: "apt",
  installScript: (packages) =>
    `${APT} update && ${APT} install --no-install-recommends ${packages.map(quote).join(" ")} && rm -rf /var/lib/apt/lists/*`,
  removeScript: (packages) => `${APT} purge --autoremove ${packages.map(quote).join(" ")}`,
  archiveDir: "/var/cache/apt/archives",
  cacheSubdir: "debian/archives",
};
