import { CodedError } from "../../common/error-codes.js";
import type { Manifest } from "../../common/manifest.js";
import { type Ctx, deps, nameParam, need, versionParam } from "../http/context.js";

/** The documents GET .../sbom serves, by `?format=`: writer (loaded on first use) and media type. */
const FORMATS = {
  cyclonedx: {
    type: "application/vnd.cyclonedx+json; version=1.6",
    render: async (m: Manifest) => (await import("../../common/sbom/cyclonedx.js")).cyclonedxJson(m),
  },
  spdx: {
    type: "application/spdx+json",
    render: async (m: Manifest) => (await import("../../common/sbom/spdx.js")).spdxJson(m),
  },
} as const;

/**
 * GET /v1/templates/{name}/{version}/sbom: the version's bill of materials derived from its
 * manifest: CycloneDX 1.6 JSON (default, `?format=cyclonedx`) or SPDX 2.3 JSON (`?format=spdx`).
 */
export async function getSbom(c: Ctx): Promise<Response> {
  const name = nameParam(c);
  const version = versionParam(c);
  need(c, "pull", name);
  const format = c.req.query("format") ?? "cyclonedx";
  if (!Object.hasOwn(FORMATS, format))
    throw new CodedError(
      "FORMAT_INVALID",
      `SBOM format ${JSON.stringify(format.slice(0, 40))}: expected ${Object.keys(FORMATS).join(" or ")}`,
    );
  const manifest = await deps(c).store.manifests.manifest(name, version);
  if (!manifest) throw new CodedError("VERSION_UNKNOWN", `${name}@${version} does not exist`);
  const { type, render } = FORMATS[format as keyof typeof FORMATS];
  c.header("Content-Type", type);
  // Derived from an immutable manifest: the same bytes for as long as the version exists.
  c.header("Cache-Control", "public, max-age=3600");
  return c.body(await render(manifest), 200);
}
