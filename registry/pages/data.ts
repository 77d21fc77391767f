import { sha256Hex } from "../../common/digest.js";
import { type Manifest, parseManifest } from "../../common/manifest.js";
import { templateListing, visibleCatalog } from "../handlers/templates.js";
import { assertRefSafe, type Ctx, deps, nameParam, need } from "../http/context.js";
import type { CatalogEntry } from "../store/catalog.js";
import type { TemplateListing } from "../store/store.js";
import type { VersionSummary } from "../store/summaries.js";

/**
 * What the pages show comes from the store through the same code that answers the API, so a
 * page can never list a template the API would hide or resolve a reference differently: the
 * catalog as the caller may see it (visibleCatalog, with the page's `?distro=&arch=`), a
 * template's listing (templateListing, with its scope check), and versions resolved by the
 * store's VersionIndex.
 */

export async function catalog(c: Ctx): Promise<CatalogEntry[]> {
  need(c, "pull", null);
  return visibleCatalog(c, { distro: c.req.query("distro"), arch: c.req.query("arch") });
}

export function templateInfo(c: Ctx): Promise<TemplateListing> {
  return templateListing(c);
}

/** The summary (sizes, created) of one version, from the SummaryCache the API listings use. */
export async function versionSummary(c: Ctx, name: string, version: string): Promise<VersionSummary | null> {
  const { store } = deps(c);
  const entry = (await store.versions.list(name)).entries.find((e) => e.version.version === version);
  if (!entry) return null;
  return store.summaries.get(entry.object);
}

export interface VersionDetail {
  name: string;
  /** The version the reference resolved to. */
  version: string;
  /** How the reference was given (a page for `latest` or `^13` redirects to the version's page). */
  kind: "version" | "tag" | "range" | "latest";
  manifest: Manifest;
  /** `sha256:<hex>` of the manifest bytes, as the API's ETag. */
  digest: string;
  signed: boolean;
}

/** `/templates/{name}/{ref}`: resolved exactly as `GET /v1/templates/{name}/{ref}` resolves it. */
export async function versionDetail(c: Ctx): Promise<VersionDetail> {
  const name = nameParam(c);
  need(c, "pull", name);
  const ref = assertRefSafe(c.req.param("version") ?? "");
  const { store } = deps(c);
  const resolved = await store.versions.resolve(name, ref);
  const manifest = parseManifest(resolved.manifest, `${name}@${resolved.version}`);
  const signed = (await store.versions.list(name)).signed.has(resolved.version);
  const digest = `sha256:${sha256Hex(resolved.manifest)}`;
  return { name, version: resolved.version, kind: resolved.kind, manifest, digest, signed };
}

/**
 * The registry's address in the commands the pages print: the request's own origin (its Host
 * header). Forwarded headers are not trusted; behind a proxy the proxy should pass Host on.
 */
export function publicOrigin(c: Ctx): string {
  return new URL(c.req.url).origin;
}
