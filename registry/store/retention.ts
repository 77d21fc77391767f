import { globMatch } from "../../common/glob.js";
import type { Catalog } from "./catalog.js";
import type { Tags } from "./tags.js";
import type { VersionIndex } from "./versions.js";

/**
 * Retention rules (the registry config's `retention:`), applied by GC before it looks for
 * unreferenced blobs: for each template, the first rule whose glob matches its name decides
 * which versions stay. A version stays when any of these holds: it is among the newest
 * `keepNewest` (by semver; releases and pre-releases counted apart unless `prereleases:
 * together`), a tag points at it (`keepTagged`, default true), it was pushed less than
 * `keepYoungerThanMs` ago, or it is the highest release (what `latest` follows). Everything
 * else is deleted as `DELETE /v1/templates/{name}/{version}` would (tags, signatures, delta
 * index); its blobs go once no manifest names them and the grace period is over.
 */
export interface RetentionRule {
  match: string;
  keepNewest?: number | undefined;
  keepTagged: boolean;
  keepYoungerThanMs?: number | undefined;
  prereleases: "separate" | "together";
}

export interface RetentionVictim {
  name: string;
  version: string;
  /** Which rule chose it. */
  rule: string;
}

export interface RetentionTarget {
  catalog: Catalog;
  versions: VersionIndex;
  tags: Tags;
  deleteVersion(name: string, version: string): Promise<void>;
}

/** The versions the rules remove (with `dryRun`, only listed). */
export async function applyRetention(
  store: RetentionTarget,
  rules: RetentionRule[],
  options: { now: number; dryRun: boolean },
): Promise<RetentionVictim[]> {
  if (rules.length === 0) return [];
  store.catalog.invalidate();
  const victims: RetentionVictim[] = [];
  for (const name of await store.catalog.names()) {
    const rule = rules.find((r) => globMatch(r.match, name));
    if (!rule) continue;
    store.versions.invalidate(name);
    const { entries } = await store.versions.list(name); // newest first
    const tagged = new Set(Object.values(await store.tags.all(name)));
    const seen = { release: 0, prerelease: 0 };
    const highestRelease = entries.find((e) => e.version.prerelease.length === 0)?.version.version;
    for (const entry of entries) {
      const version = entry.version.version;
      const kind =
        rule.prereleases === "together" || entry.version.prerelease.length === 0 ? "release" : "prerelease";
      seen[kind]++;
      const keep =
        version === highestRelease ||
        (rule.keepNewest !== undefined && seen[kind] <= rule.keepNewest) ||
        (rule.keepTagged && tagged.has(version)) ||
        (rule.keepYoungerThanMs !== undefined &&
          options.now - entry.object.modified.getTime() < rule.keepYoungerThanMs);
      if (keep) continue;
      victims.push({ name, version, rule: rule.match });
      if (!options.dryRun) {
        // Deleted meanwhile (a DELETE, another replica's GC): gone either way.
        await store.deleteVersion(name, version).catch((err: unknown) => {
          if ((err as { code?: string }).code !== "VERSION_UNKNOWN") throw err;
        });
      }
    }
  }
  return victims;
}
