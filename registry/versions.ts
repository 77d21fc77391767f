import semver, { SemVer } from "semver";
import { isTag, isVersion } from "../common/names.js";
import { badRequest, notFound } from "./errors.js";
import { keys, parseTemplateKey } from "./keys.js";
import type { ObjectInfo, Storage } from "./storage/storage.js";

/**
 * Version lists and reference resolution (exact version, tag, semver range, `latest`).
 *
 * Processes keep no state of their own, so the truth is always storage. Listing a name's
 * versions is the one costly read (10,000 keys), so each process may reuse a name's sorted list
 * for `ttlMs` (default 2 s) and drops it at once after its own pushes and deletes. Exact versions
 * and tags are always read from storage, so only ranges and the implicit `latest` may lag behind
 * a push made through another replica, by at most the TTL.
 */
export interface VersionEntry {
  version: SemVer;
  /** The listed manifest object; its size and time may cost a stat, so read them only when needed. */
  object: ObjectInfo;
}

interface CachedList {
  loadedAt: number;
  /** Newest first. */
  entries: VersionEntry[];
  signed: Set<string>;
  /** Ranges already resolved against this list: many hosts ask for the same `^13`. */
  resolved: Map<string, VersionEntry | null>;
}

export type RefKind = "version" | "tag" | "range" | "latest";

export interface Resolved {
  version: string;
  kind: RefKind;
  manifest: Buffer;
}

export class VersionIndex {
  private cache = new Map<string, CachedList>();
  private loading = new Map<string, Promise<CachedList>>();
  private manifests = new Map<string, { size: number; modified: number; bytes: Buffer }>();
  private manifestBytes = 0;

  constructor(
    private readonly storage: Storage,
    public ttlMs = 2000,
  ) {}

  invalidate(name: string): void {
    this.cache.delete(name);
  }

  /**
   * A listed version's manifest. Manifests are immutable, so bytes read once are reused while
   * the listing still shows the same object (size and time): resolving `^13` under load then
   * costs no storage read. A version deleted through another replica drops out with the listing.
   */
  private async manifestOf(name: string, entry: VersionEntry): Promise<Buffer | null> {
    const id = `${name}@${entry.version.version}`;
    const cached = this.manifests.get(id);
    const { size, modified } = entry.object;
    if (cached && cached.size === size && cached.modified === modified.getTime()) return cached.bytes;
    const bytes = await this.storage.getObject(keys.manifest(name, entry.version.version));
    if (!bytes) return null;
    if (this.manifestBytes > 64 * 1024 * 1024) {
      this.manifests.clear();
      this.manifestBytes = 0;
    }
    this.manifests.set(id, { size, modified: modified.getTime(), bytes });
    this.manifestBytes += bytes.length;
    return bytes;
  }

  async list(name: string): Promise<CachedList> {
    const hit = this.cache.get(name);
    if (hit && Date.now() - hit.loadedAt < this.ttlMs) return hit;
    let pending = this.loading.get(name);
    if (!pending) {
      // One listing per name at a time, however many requests are waiting for it.
      pending = this.load(name).finally(() => this.loading.delete(name));
      this.loading.set(name, pending);
    }
    // Stale while revalidating: an expired list still answers (it is at most one listing old)
    // while the fresh one loads, so resolution stays fast under load. After a push or delete
    // through this process there is no entry, so that caller waits for the fresh list.
    if (hit && Date.now() - hit.loadedAt < 5 * this.ttlMs) {
      pending.catch(() => {});
      return hit;
    }
    return pending;
  }

  private async load(name: string): Promise<CachedList> {
    const started = Date.now();
    const entries: VersionEntry[] = [];
    const signed = new Set<string>();
    for await (const obj of this.storage.list(keys.versions(name))) {
      const parsed = parseTemplateKey(obj.key);
      if (!parsed || parsed.kind === "tag") continue;
      if (parsed.kind === "signature") signed.add(parsed.version);
      else {
        const entry = entryOf(parsed.version, obj);
        if (entry) entries.push(entry);
      }
    }
    entries.sort((a, b) => b.version.compare(a.version));
    const list = { loadedAt: started, entries, signed, resolved: new Map() };
    this.cache.set(name, list);
    return list;
  }

  /** The highest non-pre-release version, or null. */
  async highestRelease(name: string): Promise<string | null> {
    const { entries } = await this.list(name);
    return entries.find((e) => e.version.prerelease.length === 0)?.version.version ?? null;
  }

  /** Resolves `ref` (already URL-decoded) for template `name` to a version and its manifest bytes. */
  async resolve(name: string, ref: string): Promise<Resolved> {
    if (isVersion(ref)) {
      const manifest = await this.storage.getObject(keys.manifest(name, ref));
      if (!manifest) throw notFound("VERSION_UNKNOWN", `${name}@${ref} does not exist`);
      return { version: ref, kind: "version", manifest };
    }
    if (isTag(ref)) {
      const target = await this.storage.getObject(keys.tag(name, ref));
      if (target) {
        const version = target.toString("utf8").trim();
        const manifest = await this.storage.getObject(keys.manifest(name, version));
        if (!manifest)
          throw notFound("VERSION_UNKNOWN", `tag ${name}@${ref} points to ${version}, which is gone`);
        return { version, kind: "tag", manifest };
      }
      if (ref === "latest")
        return this.fromList(name, "latest", ref, (e) => e.version.prerelease.length === 0);
      if (semver.validRange(ref) === null)
        throw notFound("TAG_UNKNOWN", `${name} has no tag ${JSON.stringify(ref)}`);
    }
    let range: semver.Range;
    try {
      range = new semver.Range(ref);
    } catch {
      throw badRequest(
        "REFERENCE_INVALID",
        `${JSON.stringify(ref)} is neither a version (1.2.3), a tag ([a-z][a-z0-9._-]*) nor a semver range (^1.2, >=1 <2)`,
      );
    }
    // semver's default: a pre-release satisfies a range only if the range names a pre-release
    // of the same major.minor.patch ("pre-releases only when asked for").
    return this.fromList(name, "range", range.range, (e) => range.test(e.version));
  }

  private async fromList(
    name: string,
    kind: RefKind,
    cacheKey: string,
    accept: (e: VersionEntry) => boolean,
  ): Promise<Resolved> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const { entries, resolved } = await this.list(name);
      let hit = resolved.get(cacheKey);
      if (hit === undefined) {
        hit = entries.find(accept) ?? null;
        if (resolved.size < 1000) resolved.set(cacheKey, hit);
      }
      if (!hit) break;
      const manifest = await this.manifestOf(name, hit);
      if (manifest) return { version: hit.version.version, kind, manifest };
      this.invalidate(name); // deleted since we listed: list again once
    }
    const { entries } = await this.list(name);
    if (entries.length === 0) throw notFound("TEMPLATE_UNKNOWN", `no template named ${name}`);
    throw notFound(
      "VERSION_UNKNOWN",
      `no version of ${name} matches ${kind === "latest" ? "latest" : "the range"}`,
    );
  }
}

/** Strict semver only (as isVersion): the parsed form must print back as the key's text. */
function entryOf(version: string, obj: ObjectInfo): VersionEntry | null {
  try {
    const parsed = new SemVer(version);
    return parsed.version === version ? { version: parsed, object: obj } : null;
  } catch {
    return null;
  }
}
