import type { PackageEntry } from "../../common/manifest.js";

/** Reads what a root has installed, from its package database (no tools of the root needed). */
export interface Inventory {
  /** Package database name: dpkg, rpm, portage. */
  name: string;
  /** Installed packages, sorted by name then arch. */
  packages(root: string): Promise<PackageEntry[]>;
  /**
   * The newest package's date (seconds since the epoch), the default SOURCE_DATE_EPOCH:
   * it depends only on the package set, so rebuilding the same set gives the same value.
   */
  newestPackageDate(root: string): Promise<number | undefined>;
}
