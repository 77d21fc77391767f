import type { ObjectInfo, StorageDriver } from "../storage/driver.js";
import { layout, parseTemplateKey } from "./layout.js";
import type { SummaryCache } from "./summaries.js";
import type { Tags } from "./tags.js";
import type { VersionIndex } from "./versions.js";

/** One template in the catalog: what `GET /v1/templates`, the pages and every host channel list. */
export interface CatalogEntry {
  name: string;
  distro: string | null;
  release: string | null;
  arch: string | null;
  flavour: string | null;
  description: string | null;
  /** The `latest` tag, else the highest release; null when there is only pre-releases. */
  latest: string | null;
  versions: number;
  /** When the newest version was pushed. */
  updated: string;
}

/**
 * The catalog of templates, built from one listing of templates/ (manifests and `latest` tags)
 * and the summary of each template's latest version. A process reuses it for `ttlMs`, like the
 * version lists, and drops it after its own pushes and deletes.
 */
export class Catalog {
  private cached: { at: number; entries: Promise<CatalogEntry[]> } | null = null;

  constructor(
    private readonly driver: StorageDriver,
    private readonly index: VersionIndex,
    private readonly tags: Tags,
    private readonly summaries: SummaryCache,
    private readonly ttlMs: () => number,
  ) {}

  invalidate(): void {
    this.cached = null;
  }

  /** Every template with at least one version, sorted by name. */
  entries(): Promise<CatalogEntry[]> {
    if (this.cached && Date.now() - this.cached.at < this.ttlMs()) return this.cached.entries;
    const entries = this.build();
    this.cached = { at: Date.now(), entries };
    entries.catch(() => {
      if (this.cached?.entries === entries) this.cached = null;
    });
    return entries;
  }

  /** Names of every template with at least one version, sorted. */
  async names(): Promise<string[]> {
    return (await this.entries()).map((e) => e.name);
  }

  private async build(): Promise<CatalogEntry[]> {
    const byName = new Map<string, { manifests: Map<string, ObjectInfo>; latestTagged: boolean }>();
    for await (const obj of this.driver.list(layout.templates)) {
      const parsed = parseTemplateKey(obj.key);
      if (!parsed) continue;
      let entry = byName.get(parsed.name);
      if (!entry) {
        entry = { manifests: new Map(), latestTagged: false };
        byName.set(parsed.name, entry);
      }
      if (parsed.kind === "manifest") entry.manifests.set(parsed.version, obj);
      else if (parsed.kind === "tag" && parsed.tag === "latest") entry.latestTagged = true;
    }
    const out: CatalogEntry[] = [];
    for (const [name, entry] of byName) {
      if (entry.manifests.size === 0) continue;
      let latest = entry.latestTagged ? await this.tags.get(name, "latest") : null;
      latest ??= await this.index.highestRelease(name);
      const newest = [...entry.manifests.values()].reduce((a, b) => (a.modified > b.modified ? a : b));
      const shown = (latest && entry.manifests.get(latest)) || newest;
      const summary = await this.summaries.get(shown);
      out.push({
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
    return out.sort((a, b) => (a.name < b.name ? -1 : 1));
  }
}
