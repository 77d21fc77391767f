import { CodedError } from "../../common/error-codes.js";
import { allowed } from "../auth.js";
import { type Ctx, deps, nameParam, need } from "../http/context.js";
import type { CatalogEntry } from "../store/catalog.js";
import type { TemplateListing } from "../store/store.js";

/** The catalog as the caller may see it: templates within its pull scope, filtered as asked. */
export async function visibleCatalog(
  c: Ctx,
  filter: { distro?: string | null; arch?: string | null } = {},
): Promise<CatalogEntry[]> {
  const principal = c.get("principal");
  const config = c.get("config");
  return (await deps(c).store.catalog.entries()).filter(
    (t) =>
      allowed(principal, "pull", t.name, config) &&
      (!filter.distro || t.distro === filter.distro) &&
      (!filter.arch || t.arch === filter.arch),
  );
}

/** GET /v1/templates?distro=&arch=: one entry per template the caller may pull. */
export async function getCatalog(c: Ctx): Promise<Response> {
  need(c, "pull", null);
  const templates = await visibleCatalog(c, { distro: c.req.query("distro"), arch: c.req.query("arch") });
  c.header("Cache-Control", "no-cache");
  return c.json({ templates });
}

/** One template's tags and versions, after the caller's scope check (the API and the pages). */
export async function templateListing(c: Ctx): Promise<TemplateListing> {
  const name = nameParam(c);
  need(c, "pull", name);
  const limitParam = c.req.query("limit");
  const limit = limitParam === undefined ? undefined : Number(limitParam);
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 0))
    throw new CodedError("LIMIT_INVALID", "?limit= must be a whole number");
  return deps(c).store.template(name, limit);
}

/** GET /v1/templates/{name}: versions newest first (created, sizes, signed) and tags. */
export async function getTemplate(c: Ctx): Promise<Response> {
  const listing = await templateListing(c);
  c.header("Cache-Control", "no-cache");
  return c.json(listing);
}
