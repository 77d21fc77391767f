import { parseDigest } from "../../common/digest.js";
import type { ObjectInfo, StorageDriver } from "../storage/driver.js";
import { layout, parseTemplateKey } from "./layout.js";
import type { SummaryCache } from "./summaries.js";

/**
 * Which templates name a blob: what a name-scoped pull token (`pull:debian-*`) needs to know
 * before it may read `/v1/blobs/<digest>`. Blobs are shared between templates, so a blob is
 * readable when ANY manifest within the token's scope names it as an artifact.
 *
 * One map blob -> names per process, built from one listing of templates/ and the manifests'
 * summaries (SummaryCache: each manifest is read once, as the listings do). Like the version
 * lists (versions.ts) it is reused for the config's cacheTtl and refreshed in the background
 * after that; but an answer of "not in scope" is only given from a map whose listing started
 * after the request arrived, so a version pushed a moment ago through another replica is never
 * refused. Those refusals cost a listing each, one at a time however many wait: callers that
 * may pull every name (pull:*, admin, anonymous pull) never come here, and a blob that does
 * not exist is answered before. A delete through this process drops the map at once; one
 * through another replica shows within a few TTLs (until then its blobs stay readable to the
 * tokens that could read that version a moment before).
 */
interface NameMap {
  /** When its listing started (ms): it knows every manifest written before then. */
  startedAt: number;
  names: Map<string, string[]>;
}

export class BlobNames {
  private current: NameMap | null = null;
  private building: { startedAt: number; map: Promise<NameMap> } | null = null;
  /** A map whose listing started before this may still show deleted versions: never kept. */
  private invalidatedAt = 0;

  constructor(
    private readonly driver: StorageDriver,
    private readonly summaries: SummaryCache,
    private readonly ttlMs: () => number,
  ) {}

  /** After a delete through this process: its versions' names must not grant access any longer. */
  invalidate(): void {
    this.current = null;
    this.invalidatedAt = Date.now();
  }

  /** Whether some template that `inScope` accepts names blob `hex`. */
  async namedWithin(hex: string, inScope: (name: string) => boolean): Promise<boolean> {
    const arrived = Date.now();
    const held = this.current;
    if (held) {
      const age = arrived - held.startedAt;
      // Past the TTL: refresh in the background (unless a build is under way already).
      if (age >= this.ttlMs() && !this.building) this.fresh(arrived).catch(() => {});
      if (age < 5 * this.ttlMs() && (held.names.get(hex) ?? []).some(inScope)) return true;
    }
    const map = await this.fresh(arrived);
    return (map.names.get(hex) ?? []).some(inScope);
  }

  /** A map whose listing started at `notBefore` or later: the one being built, or a new one. */
  private async fresh(notBefore: number): Promise<NameMap> {
    for (;;) {
      if (this.current && this.current.startedAt >= notBefore) return this.current;
      const building = this.building;
      if (!building) break;
      if (building.startedAt >= notBefore) return building.map;
      await building.map.catch(() => {}); // started too early: wait for it, then start the next
    }
    const startedAt = Date.now();
    const map = this.build(startedAt).finally(() => {
      if (this.building?.map === map) this.building = null;
    });
    this.building = { startedAt, map };
    return map;
  }

  private async build(startedAt: number): Promise<NameMap> {
    const manifests: { name: string; obj: ObjectInfo }[] = [];
    for await (const obj of this.driver.list(layout.templates)) {
      const parsed = parseTemplateKey(obj.key);
      if (parsed?.kind === "manifest") manifests.push({ name: parsed.name, obj });
    }
    const names = new Map<string, string[]>();
    // Manifests not yet summarised are read a few dozen at a time (S3: one GET each).
    let next = 0;
    const worker = async () => {
      while (next < manifests.length) {
        const { name, obj } = manifests[next++]!;
        const summary = await this.summaries.get(obj);
        for (const artifact of summary?.artifacts ?? []) {
          const hex = parseDigest(artifact.digest);
          if (!hex) continue;
          const list = names.get(hex);
          if (!list) names.set(hex, [name]);
          else if (!list.includes(name)) list.push(name);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(32, manifests.length) }, worker));
    const map = { startedAt, names };
    const newer = this.current && this.current.startedAt > startedAt;
    if (!newer && startedAt >= this.invalidatedAt) this.current = map;
    return map;
  }
}
