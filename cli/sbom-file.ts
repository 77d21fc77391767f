import { readFile } from "node:fs/promises";
import { writeFileAtomic } from "../common/atomic.js";
import { parseManifest } from "../common/manifest.js";

/**
 * `--sbom` of build and pack: the CycloneDX 1.6 JSON bill of materials of a written manifest,
 * beside it as `<name>-<version>.cdx.json` (the registry serves the same document at
 * /v1/templates/{name}/{version}/sbom). Returns its path.
 */
export async function writeSbomBeside(manifestPath: string): Promise<string> {
  const manifest = parseManifest(await readFile(manifestPath), manifestPath);
  const { cyclonedxJson } = await import("../common/sbom/cyclonedx.js");
  const path = manifestPath.replace(/\.manifest\.json$/, ".cdx.json");
  await writeFileAtomic(path, cyclonedxJson(manifest));
  return path;
}
