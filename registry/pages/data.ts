import { sha256Hex } from "../../common/digest.js";
import { type Manifest, parseManifest } from "../../common/manifest.js";
import { assertRefSafe, type Ctx, deps, nameParam, need } from "../context.js";
import { type CatalogEntry, getCatalog, getTemplate } from "../handlers/templates.js";
import type { VersionSummary } from "../summaries.js";

/**
 * What the pages show comes from the same code that answers the API, so a page can never list
 * a template the API would hide or resolve a reference differently: the catalog and the
 * template's version list are the answers of the `/v1/templates` handlers themselves (with the
 * page's own query, so `?distro=&arch=` filter both alike, and their scope checks apply), and a
 * version is resolved by the VersionIndex and described by the SummaryCache, as the API does.
 */

/** `GET /v1/templates/{name}`. */
export interface TemplateInfo {
  name: string;
  tags: Record<string, string>;
  versions: (VersionSummary & { signed: boolean; pushed: string })[];
}

/** The API handler's JSON answer; its errors are thrown, so the page shows them in HTML. */
async function answer<T>(c: Ctx, handler: (c: Ctx) => Promise<Response>): Promise<T> {
  const res = await handler(c);
  return (await res.json()) as T;
}

export async function catalog(c: Ctx): Promise<CatalogEntry[]> {
  return (await answer<{ templates: CatalogEntry[] }>(c, getCatalog)).templates;
}

export function templateInfo(c: Ctx): Promise<TemplateInfo> {
  return answer<TemplateInfo>(c, getTemplate);
}

/** The summary (sizes, created) of one version, from the SummaryCache the API listings use. */
export async function versionSummary(c: Ctx, name: string, version: string): Promise<VersionSummary | null> {
  const { index, summaries } = deps(c);
  const entry = (await index.list(name)).entries.find((e) => e.version.version === version);
  if (!entry) return null;
  return summaries.get(entry.object);
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
  const { index } = deps(c);
  const resolved = await index.resolve(name, ref);
  const manifest = parseManifest(resolved.manifest, `${name}@${resolved.version}`);
  const signed = (await index.list(name)).signed.has(resolved.version);
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
