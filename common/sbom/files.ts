import type { Manifest } from "../manifest.js";

/** The bill-of-materials files written beside a manifest (`--sbom`), by file-name suffix. */
export const SBOM_SUFFIXES = { cyclonedx: ".cdx.json", spdx: ".spdx.json" } as const;

/**
 * Both documents of `manifest` (CycloneDX 1.6 and SPDX 2.3 JSON), as `templar build`/`pack
 * --sbom` write them beside `<name>-<version>.manifest.json` and the registry serves them at
 * /v1/templates/{name}/{version}/sbom. The CycloneDX library loads only here, on first use.
 */
export async function sbomDocuments(manifest: Manifest): Promise<{ suffix: string; text: string }[]> {
  const [{ cyclonedxJson }, { spdxJson }] = await Promise.all([
    import("./cyclonedx.js"),
    import("./spdx.js"),
  ]);
  return [
    { suffix: SBOM_SUFFIXES.cyclonedx, text: cyclonedxJson(manifest) },
    { suffix: SBOM_SUFFIXES.spdx, text: spdxJson(manifest) },
  ];
}
