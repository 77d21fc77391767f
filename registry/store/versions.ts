import { SemVer } from "semver";
import { CodedError } from "../../common/error-codes.js";
import { inRange, type RefKind, refKind } from "../../common/reference.js";
import type { ObjectInfo, StorageDriver } from "../storage/driver.js";
import { layout, parseTemplateKey } from "./layout.js";
import type { Tags } from "./tags.js";

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

export interface VersionList {
  loadedAt: number;
  /** Newest first. */
  entries: VersionEntry[];
  /** Versions whose manifest has a signature. */
  signed: Set<string>;
  /** Ranges already resolved against this list: many hosts ask for the same `^13`. */
  resolved: Map<string, VersionEntry | null>;
}

export interface Resolved {
  version: string;
  /** How the reference was given; `latest` when it was the implicit highest release. */
  kind: RefKind | "latest";
  manifest: Buffer;
}

export class VersionIndex {
  private cache = new Map<string, VersionList>();
  private loading = new Map<string, Promise<VersionList>>();
  private manifests = new Map<string, { size: number; modified: number; bytes: Buffer }>();
  private manifestBytes = 0;

  constructor(
    private readonly driver: StorageDriver,
    private readonly tags: Tags,
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
  async manifestOf(name: string, entry: VersionEntry): Promise<Buffer | null> {
    const id = `${name}@${entry.version.version}`;
    const cached = this.manifests.get(id);
    const { size, modified } = entry.object;
    if (cached && cached.size === size && cached.modified === modified.getTime()) return cached.bytes;
    const bytes = await this.driver.get(layout.manifest(name, entry.version.version));
    if (!bytes) return null;
    if (this.manifestBytes > 64 * 1024 * 1024) {
      this.manifests.clear();
      this.manifestBytes = 0;
    }
    this.manifests.set(id, { size, modified: modified.getTime(), bytes });
    this.manifestBytes += bytes.length;
    return bytes;
  }

  async list(name: string): Promise<VersionList> {
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

  private async load(name: string): Promise<VersionList> {
    const started = Date.now();
    const entries: VersionEntry[] = [];
    const signed = new Set<string>();
    for await (const obj of this.driver.list(layout.versions(name))) {
      const parsed = parseTemplateKey(obj.key);
      if (parsed?.kind === "signature") signed.add(parsed.version);
      else if (parsed?.kind === "manifest") {
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
    const kind = refKind(ref);
    if (kind === "version") {
      const manifest = await this.driver.get(layout.manifest(name, ref));
      if (!manifest) throw new CodedError("VERSION_UNKNOWN", `${name}@${ref} does not exist`);
      return { version: ref, kind, manifest };
    }
    if (kind === "tag") {
      const version = await this.tags.get(name, ref);
      if (version) {
        const manifest = await this.driver.get(layout.manifest(name, version));
        if (!manifest)
          throw new CodedError("VERSION_UNKNOWN", `tag ${name}@${ref} points to ${version}, which is gone`);
        return { version, kind, manifest };
      }
      if (ref === "latest")
        return this.fromList(name, "latest", ref, (e) => e.version.prerelease.length === 0);
      throw new CodedError("TAG_UNKNOWN", `${name} has no tag ${JSON.stringify(ref)}`);
    }
    if (kind === null) {
      throw new CodedError(
        "REFERENCE_INVALID",
        `${JSON.stringify(ref)} is neither a version (1.2.3), a tag ([a-z][a-z0-9._-]*) nor a semver range (^1.2, >=1 <2)`,
      );
    }
    return this.fromList(name, "range", ref, (e) => inRange(e.version.version, ref));
  }

  private async fromList(
    name: string,
    kind: "range" | "latest",
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
    if (entries.length === 0) throw new CodedError("TEMPLATE_UNKNOWN", `no template named ${name}`);
    throw new CodedError(
      "VERSION_UNKNOWN",
      `no version of ${name} matches ${kind === "latest" ? "latest" : "the range"}`,
    );
  }
}

/** Strict semver only: the parsed form must print back as the key's text. */
function entryOf(version: string, obj: ObjectInfo): VersionEntry | null {
  try {
    const parsed = new SemVer(version);
    return parsed.version === version ? { version: parsed, object: obj } : null;
  } catch {
    return null;
  }
}
