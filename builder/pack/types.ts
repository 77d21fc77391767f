import type { ArtifactFormat, Format, HostMetaFormat } from "../../common/formats.js";
import type { Manifest } from "../../common/manifest.js";
import type { XattrMap } from "./xattrs.js";

/** What `packTemplate` needs: the builder and `templar pack` both call it. */
export interface PackOptions {
  /** The root filesystem directory to pack (its contents become ./ in the tar). */
  rootfs: string;
  /** Directory that receives `<name>-<version>.<format>` and `<name>-<version>.manifest.json`. */
  outDir: string;
  name: string;
  version: string;
  /** Default: ["tar.zst", "tar.gz"]. */
  formats?: Format[];
  /** Host metadata tarballs to make beside the formats (LXC, Incus); they need tar.xz. */
  meta?: HostMetaFormat[];
  /** Clamp for every mtime, and the manifest's `created`; default: no clamp, and now. */
  sourceDateEpoch?: number;
  /** Manifest fields the packer does not compute itself (distro, release, recipe, source, packages...). */
  manifestFields?: Partial<Omit<Manifest, "schemaVersion" | "name" | "version" | "rootfs" | "artifacts">>;
  /** Called with bytes of tar produced so far; the packer knows no total up front. */
  onProgress?: (tarBytes: number, entries: number) => void;
  /** Force the in-process compressors even when zstd/pigz/xz are installed (tests cover both paths). */
  inProcessOnly?: boolean;
  /** readTreeXattrs(resolve(rootfs)) when the caller started it early; else the packer runs it. */
  xattrs?: Promise<XattrMap>;
}

export interface PackResult {
  manifest: Manifest;
  manifestPath: string;
  /** Absolute path of each artifact written. */
  files: Partial<Record<ArtifactFormat, string>>;
  /** Things skipped or adjusted (sockets, ...), one line each. */
  warnings: string[];
}
