import type { ObjectInfo, StorageDriver } from "../storage/driver.js";
import { parseTemplateKey } from "./layout.js";

/** What listings show of one version, taken from its manifest. */
export interface VersionSummary {
  version: string;
  created: string | null;
  distro: string | null;
  release: string | null;
  arch: string | null;
  flavour: string | null;
  description: string | null;
  artifacts: { format: string; digest: string; size: number }[];
  manifestSize: number;
}

/**
 * Manifests are immutable, so what we read from one can be kept as long as the object is the
 * same (key + size + modification time): a version deleted and pushed again is read anew.
 */
export class SummaryCache {
  private cache = new Map<string, VersionSummary>();
  constructor(
    private readonly driver: StorageDriver,
    private readonly max = 50_000,
  ) {}

  async get(obj: ObjectInfo): Promise<VersionSummary | null> {
    const id = `${obj.key}\u0000${obj.size}\u0000${obj.modified.getTime()}`;
    const hit = this.cache.get(id);
    if (hit) return hit;
    const parsed = parseTemplateKey(obj.key);
    if (parsed?.kind !== "manifest") return null;
    const bytes = await this.driver.get(obj.key);
    if (!bytes) return null;
    const summary = summarize(parsed.version, bytes);
    if (this.cache.size >= this.max) this.cache.clear();
    this.cache.set(id, summary);
    return summary;
  }
}

export function summarize(version: string, bytes: Buffer): VersionSummary {
  let m: Record<string, unknown> = {};
  try {
    m = JSON.parse(bytes.toString("utf8")) as Record<string, unknown>;
  } catch {
    // Stored manifests were validated on push; an unreadable one still lists, without details.
  }
  const str = (v: unknown) => (typeof v === "string" ? v : null);
  const artifacts = Array.isArray(m.artifacts)
    ? (m.artifacts as Record<string, unknown>[]).map((a) => ({
        format: String(a.format),
        digest: String(a.digest),
        size: Number(a.size),
      }))
    : [];
  return {
    version,
    created: str(m.created),
    distro: str(m.distro),
    release: str(m.release),
    arch: str(m.arch),
    flavour: str(m.flavour),
    description: str(m.description),
    artifacts,
    manifestSize: bytes.length,
  };
}
