import { archAs, manifestArch } from "./arch.js";
import type { ArtifactFormat, Format } from "./formats.js";
import type { Manifest } from "./manifest.js";

/**
 * The files a template becomes (docs/formats.md): the canonical manifest bytes, the
 * names in a build's out/ directory, and the names each host's template cache expects. Kept
 * free of zod, so that the packer's start-up does not pay for loading it.
 */

/** The canonical bytes we write for a manifest: two-space JSON and a final newline. */
export function serializeManifest(manifest: Manifest): Buffer {
  return Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`, "utf8");
}

/** In an out/ directory: `<name>-<version>.tar.zst`. */
export function artifactFileName(name: string, version: string, format: ArtifactFormat): string {
  return `${name}-${version}.${format}`;
}

/** In an out/ directory: `<name>-<version>.manifest.json`. */
export function manifestFileName(name: string, version: string): string {
  return `${name}-${version}.manifest.json`;
}

/** OpenVZ's template cache: `<name>.tar.gz` (what `vzctl create --ostemplate <name>` looks for). */
export function openvzFileName(name: string, format: Format): string {
  return `${name}.${format}`;
}

/** The architecture in Proxmox's (Debian's) naming: amd64, arm64. */
export function proxmoxArch(manifest: Pick<Manifest, "name" | "arch">): string {
  return archAs(manifestArch(manifest), "debian");
}

/** Proxmox's template cache: `<name>_<version>_<debian arch>.tar.zst`, as pveam names downloads. */
export function proxmoxFileName(
  manifest: Pick<Manifest, "name" | "version" | "arch">,
  format: Format = "tar.zst",
): string {
  return `${manifest.name}_${manifest.version}_${proxmoxArch(manifest)}.${format}`;
}
