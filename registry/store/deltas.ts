import { type DeltaIndex, DeltaIndexSchema, MAX_DELTA_INDEX_BYTES } from "../../common/delta.js";
import type { StorageDriver } from "../storage/driver.js";
import { layout, parseDeltaIndexKey } from "./layout.js";

/**
 * Delta indexes: for one version, the patches that turn older versions' tars into its tar
 * (common/delta.ts). Not part of the signed manifest, so they may be made after the push and
 * replaced; the patches themselves are blobs. GC keeps the blobs an index names and drops the
 * indexes of versions that are gone (gc.ts).
 */
export class DeltaIndexes {
  constructor(private readonly driver: StorageDriver) {}

  /** The stored index, or null when none was made (or it cannot be read). */
  async get(name: string, version: string): Promise<DeltaIndex | null> {
    const bytes = await this.driver.get(layout.deltaIndex(name, version));
    if (!bytes || bytes.length > MAX_DELTA_INDEX_BYTES) return null;
    try {
      const parsed = DeltaIndexSchema.safeParse(JSON.parse(bytes.toString("utf8")));
      return parsed.success ? parsed.data : null;
    } catch {
      return null;
    }
  }

  async put(index: DeltaIndex): Promise<void> {
    await this.driver.put(
      layout.deltaIndex(index.name, index.version),
      Buffer.from(`${JSON.stringify(index, null, 2)}\n`),
    );
  }

  delete(name: string, version: string): Promise<void> {
    return this.driver.delete(layout.deltaIndex(name, version));
  }

  /** Every stored index's template and version, with its raw bytes (GC reads the digests). */
  async *list(): AsyncIterable<{ name: string; version: string; bytes: Buffer }> {
    for await (const obj of this.driver.list(layout.deltaIndexes)) {
      const parsed = parseDeltaIndexKey(obj.key);
      if (!parsed) continue;
      const bytes = await this.driver.get(obj.key);
      if (bytes) yield { ...parsed, bytes };
    }
  }
}
