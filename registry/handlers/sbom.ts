import { CodedError } from "../../common/error-codes.js";
import { type Ctx, deps, nameParam, need, versionParam } from "../http/context.js";

/**
 * GET /v1/templates/{name}/{version}/sbom: the version's bill of materials, CycloneDX 1.6 JSON
 * derived from its manifest (common/sbom/cyclonedx.ts; the library loads on first use).
 */
export async function getSbom(c: Ctx): Promise<Response> {
  const name = nameParam(c);
  const version = versionParam(c);
  need(c, "pull", name);
  const format = c.req.query("format") ?? "cyclonedx";
  if (format !== "cyclonedx")
    throw new CodedError(
      "FORMAT_INVALID",
      `SBOM format ${JSON.stringify(format)}: this registry serves cyclonedx`,
    );
  const manifest = await deps(c).store.manifests.manifest(name, version);
  if (!manifest) throw new CodedError("VERSION_UNKNOWN", `${name}@${version} does not exist`);
  const { cyclonedxJson } = await import("../../common/sbom/cyclonedx.js");
  c.header("Content-Type", "application/vnd.cyclonedx+json; version=1.6");
  // Derived from an immutable manifest: the same bytes for as long as the version exists.
  c.header("Cache-Control", "public, max-age=3600");
  return c.body(cyclonedxJson(manifest), 200);
}
