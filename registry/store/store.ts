import { CodedError } from "../../common/error-codes.js";
import type { Manifest } from "../../common/manifest.js";
import type { StorageDriver } from "../storage/driver.js";
import { BlobNames } from "./blob-names.js";
import { Blobs } from "./blobs.js";
import { Catalog } from "./catalog.js";
import { DeltaIndexes } from "./deltas.js";
import { DerivedSums } from "./derived.js";
import { type GcOptions, type GcReport, runGc } from "./gc.js";
import { Manifests } from "./manifests.js";
import { publishManifest } from "./publish.js";
import { applyRetention } from "./retention.js";
import { SummaryCache, type VersionSummary } from "./summaries.js";
import { Tags } from "./tags.js";
import { Uploads } from "./uploads.js";
import { VersionIndex } from "./versions.js";

/** One version as the template listing shows it. */
export interface ListedVersion extends VersionSummary {
  signed: boolean;
  /** When the registry received it. */
  pushed: string;
}

export interface TemplateListing {
  name: string;
  /** Every tag, with `latest` filled in (the highest release) when it is not set explicitly. */
  tags: Record<string, string>;
  /** Newest first. */
  versions: ListedVersion[];
}

export interface StoreOptions {
  /** How long a process may reuse version lists and the catalog (config cacheTtl). */
  cacheTtlMs: number;
}

/**
 * The registry's store: templates, versions, tags, blobs and uploads over one storage driver.
 * It is the only code that knows the storage layout (layout.ts) and talks to the driver; the
 * HTTP handlers, host channels, pages, GC and mirrors call it. Its errors are CodedErrors with
 * codes from common/error-codes.ts, which the HTTP layer turns into statuses.
 *
 * Reads go through the parts (blobs, uploads, tags, versions, manifests, catalog, ...); changes
 * to templates go through the methods below, which keep this process's caches right.
 */
export class Store {
  readonly blobs: Blobs;
  readonly uploads: Uploads;
  readonly tags: Tags;
  readonly versions: VersionIndex;
  readonly manifests: Manifests;
  readonly summaries: SummaryCache;
  readonly catalog: Catalog;
  readonly derived: DerivedSums;
  readonly blobNames: BlobNames;
  readonly deltas: DeltaIndexes;

  constructor(
    readonly driver: StorageDriver,
    options: StoreOptions,
  ) {
    this.blobs = new Blobs(driver);
    this.uploads = new Uploads(driver, this.blobs);
    this.tags = new Tags(driver);
    this.versions = new VersionIndex(driver, this.tags, options.cacheTtlMs);
    this.manifests = new Manifests(driver);
    this.summaries = new SummaryCache(driver);
    const ttl = () => this.versions.ttlMs;
    this.catalog = new Catalog(driver, this.versions, this.tags, this.summaries, ttl);
    this.derived = new DerivedSums(driver, this.blobs);
    this.blobNames = new BlobNames(driver, this.summaries, ttl);
    this.deltas = new DeltaIndexes(driver);
  }

  get kind(): string {
    return this.driver.kind;
  }

  /** Throws a clear error when storage cannot be used (readiness). */
  check(): Promise<void> {
    return this.driver.check();
  }

  /**
   * Publishes a version's manifest (its blobs must be stored already): "created", or "same" when
   * these exact bytes were there. Safe beside an online GC (publish.ts).
   */
  async publish(manifest: Manifest, bytes: Buffer): Promise<"created" | "same"> {
    const outcome = await publishManifest(this.driver, this.blobs, manifest, bytes);
    if (outcome === "created") this.changed(manifest.name);
    return outcome;
  }

  /**
   * Deletes a version: tags pointing at it, its signatures, its manifest, its delta index (its
   * blobs and patches go at GC).
   */
  async deleteVersion(name: string, version: string): Promise<void> {
    if (!(await this.manifests.exists(name, version)))
      throw new CodedError("VERSION_UNKNOWN", `${name}@${version} does not exist`);
    await this.tags.dropVersion(name, version);
    await this.manifests.delete(name, version);
    await this.deltas.delete(name, version);
    this.changed(name);
    this.blobNames.invalidate();
  }

  /** Points `tag` at an existing version. */
  async setTag(name: string, tag: string, version: string): Promise<void> {
    if (!(await this.manifests.exists(name, version))) {
      throw new CodedError(
        "VERSION_UNKNOWN",
        `${name}@${version} does not exist; push it before tagging it`,
        {},
        400,
      );
    }
    await this.tags.set(name, tag, version);
    this.changed(name);
  }

  /** Removes a tag; removing `latest` makes it follow the highest release again. */
  async deleteTag(name: string, tag: string): Promise<void> {
    if (!(await this.tags.delete(name, tag)))
      throw new CodedError("TAG_UNKNOWN", `${name} has no tag ${tag}`);
    this.changed(name);
  }

  async putSignature(name: string, version: string, signature: Buffer): Promise<boolean> {
    const created = await this.manifests.putSignature(name, version, signature);
    if (created) this.versions.invalidate(name);
    return created;
  }

  /**
   * Online garbage collection (gc.ts): retention rules first (retention.ts), then unreferenced
   * blobs, abandoned uploads and writes.
   */
  async gc(options: GcOptions): Promise<GcReport> {
    const victims = await applyRetention(this, options.retention ?? [], {
      now: options.now ?? Date.now(),
      dryRun: options.dryRun ?? false,
    });
    return runGc(this, options, victims);
  }

  /** A template's tags and versions (newest first, at most `limit`), for listings and pages. */
  async template(name: string, limit?: number): Promise<TemplateListing> {
    const list = await this.versions.list(name);
    if (list.entries.length === 0) throw new CodedError("TEMPLATE_UNKNOWN", `no template named ${name}`);
    const tags = await this.tags.all(name);
    if (tags.latest === undefined) {
      const highest = await this.versions.highestRelease(name);
      if (highest) tags.latest = highest;
    }
    const entries = list.entries.slice(0, limit ?? list.entries.length);
    // Manifests are read a few dozen at a time (then cached: they never change).
    const summaries = await mapLimit(entries, 32, (e) => this.summaries.get(e.object));
    const versions: ListedVersion[] = [];
    entries.forEach((e, i) => {
      const summary = summaries[i];
      const v = e.version.version;
      if (summary)
        versions.push({ ...summary, signed: list.signed.has(v), pushed: e.object.modified.toISOString() });
    });
    return { name, tags, versions };
  }

  /** Drops what this process cached about `name` after a change through it. */
  private changed(name: string): void {
    this.versions.invalidate(name);
    this.catalog.invalidate();
  }
}

export async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
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
