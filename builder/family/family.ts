import type { Inventory } from "../inventory/inventory.js";
import type { ContainerPreset } from "./presets/preset.js";

/** How a family's package manager is driven from a shell inside the root. */
export interface PackageManager {
  name: string;
  /** Shell script (run in the root) that installs `packages`, refreshing indices first. */
  installScript(packages: string[]): string;
  removeScript(packages: string[]): string;
  /** Directory inside the root where it keeps downloaded packages (the host cache is bound there). */
  archiveDir?: string;
  /** Subdirectory of the host cache (--cache) for this manager's packages. */
  cacheSubdir?: string;
}

/**
 * A distro family: what differs between Debian-likes, RHEL-likes and Gentoo for the builder.
 * Registered in ./index.ts; the source method produces the root, the family knows how to treat it.
 */
export interface Family {
  name: string;
  /** Recipe `distro:` values that belong to this family. */
  distros: string[];
  packageManager: PackageManager;
  inventory: Inventory;
  preset: ContainerPreset;
}
