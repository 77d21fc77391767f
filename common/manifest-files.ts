import type { Manifest } from "./manifest.js";

/** Artifact formats, in the order DESIGN.md lists them. */
export const FORMATS = ["tar.zst", "tar.gz", "tar.xz"] as const;
export type Format = (typeof FORMATS)[number];

/** The canonical bytes we write for a manifest: two-space JSON and a final newline. */
export function serializeManifest(manifest: Manifest): Buffer {
  return Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`, "utf8");
}

/** File names in an out/ directory (DESIGN: `<name>-<version>.tar.zst`, `.manifest.json`). */
export function artifactFileName(name: string, version: string, format: Format): string {
  return `${name}-${version}.${format}`;
}

export function manifestFileName(name: string, version: string): string {
  return `${name}-${version}.manifest.json`;
}
