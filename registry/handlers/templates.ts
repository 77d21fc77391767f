import { allowed } from "../auth.js";
import { type Ctx, deps, nameParam, need } from "../context.js";
import { badRequest, notFound } from "../errors.js";
import { keys, parseTemplateKey } from "../keys.js";
import type { ObjectInfo } from "../storage/storage.js";
import type { VersionSummary } from "../summaries.js";

/** One row of `GET /v1/templates` (the pages read the same shape). */
export interface CatalogEntry {
  name: string;
  distro: string | null;
  release: string | null;
  arch: string | null;
  flavour: string | null;
  description: string | null;
  latest: string | null;
  versions: number;
  updated: string;
}

/** GET /v1/templates?distro=&arch=: one entry per template the caller may pull. */
export async function getCatalog(c: Ctx): Promise<Response> {
  need(c, "pull", null);
  const { storage, summaries, index } = deps(c);
  const distro = c.req.query("distro");
  const arch = c.req.query("arch");
  const byName = new Map<string, { manifests: Map<string, ObjectInfo>; latestTag: string | null }>();
  for await (const obj of storage.list(keys.templates)) {
    const parsed = parseTemplateKey(obj.key);
    if (!parsed) continue;
    let entry = byName.get(parsed.name);
    if (!entry) {
      entry = { manifests: new Map(), latestTag: null };
      byName.set(parsed.name, entry);
    }
    if (parsed.kind === "manifest") entry.manifests.set(parsed.version, obj);
    else if (parsed.kind === "tag" && parsed.tag === "latest") entry.latestTag = obj.key;
  }
  const principal = c.get("principal");
  const config = c.get("config");
  const templates: CatalogEntry[] = [];
  for (const [name, entry] of byName) {
    if (entry.manifests.size === 0 || !allowed(principal, "pull", name, config)) continue;
    let latest: string | null = null;
    if (entry.latestTag) latest = (await storage.getObject(entry.latestTag))?.toString("utf8").trim() ?? null;
    latest ??= await index.highestRelease(name);
    const newest = [...entry.manifests.values()].reduce((a, b) => (a.modified > b.modified ? a : b));
    const shown = (latest && entry.manifests.get(latest)) || newest;
    const summary = await summaries.get(shown);
    if (distro && summary?.distro !== distro) continue;
    if (arch && summary?.arch !== arch) continue;
    templates.push({
      name,
      distro: summary?.distro ?? null,
      release: summary?.release ?? null,
      arch: summary?.arch ?? null,
      flavour: summary?.flavour ?? null,
      description: summary?.description ?? null,
      latest,
      versions: entry.manifests.size,
      updated: newest.modified.toISOString(),
    });
  }
  templates.sort((a, b) => (a.name < b.name ? -1 : 1));
  c.header("Cache-Control", "no-cache");
  return c.json({ templates });
}

/** GET /v1/templates/{name}: versions newest first (created, sizes, signed) and tags. */
export async function getTemplate(c: Ctx): Promise<Response> {
  const name = nameParam(c);
  need(c, "pull", name);
  const { storage, summaries, index } = deps(c);
  const list = await index.list(name);
  if (list.entries.length === 0) throw notFound("TEMPLATE_UNKNOWN", `no template named ${name}`);
  const tags: Record<string, string> = {};
  for await (const obj of storage.list(keys.tags(name))) {
    const parsed = parseTemplateKey(obj.key);
    const target = await storage.getObject(obj.key);
    if (parsed?.kind === "tag" && target) tags[parsed.tag] = target.toString("utf8").trim();
  }
  tags.latest ??= (await index.highestRelease(name)) ?? "";
  if (tags.latest === "") delete tags.latest;
  const limitParam = c.req.query("limit");
  const limit = limitParam === undefined ? list.entries.length : Number(limitParam);
  if (!Number.isInteger(limit) || limit < 0)
    throw badRequest("LIMIT_INVALID", "?limit= must be a whole number");
  const entries = list.entries.slice(0, limit);
  // Manifests are read a few dozen at a time (then cached: they never change).
  const got = await mapLimit(entries, 32, (e) => summaries.get(e.object));
  const versions: (VersionSummary & { signed: boolean; pushed: string })[] = [];
  entries.forEach((e, i) => {
    const summary = got[i];
    const v = e.version.version;
    if (summary)
      versions.push({ ...summary, signed: list.signed.has(v), pushed: e.object.modified.toISOString() });
  });
  c.header("Cache-Control", "no-cache");
  return c.json({ name, tags, versions });
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
