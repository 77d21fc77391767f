import { createHash } from "node:crypto";
import { z } from "zod";
import type { StorageDriver } from "../storage/driver.js";
import type { Blobs } from "./blobs.js";
import { layout } from "./layout.js";

/**
 * md5 and sha512 of a blob, which pveam checks (aplinfo.dat `md5sum`, `sha512sum`) but manifests
 * do not carry. Computed once from the blob and kept in storage as a derived object keyed by the
 * blob's digest, so every replica reuses it; GC deletes it with the blob. Concurrent requests in
 * one process share one computation.
 */
const SumsSchema = z.object({
  md5: z.string().regex(/^[0-9a-f]{32}$/),
  sha512: z.string().regex(/^[0-9a-f]{128}$/),
});
export type Sums = z.infer<typeof SumsSchema>;

export class DerivedSums {
  private inFlight = new Map<string, Promise<Sums>>();
  /** A blob's sums never change: each process keeps the ones it has read. */
  private known = new Map<string, Sums>();

  constructor(
    private readonly driver: StorageDriver,
    private readonly blobs: Blobs,
  ) {}

  async of(hex: string): Promise<Sums> {
    const hit = this.known.get(hex);
    if (hit) return hit;
    const stored = await this.driver.get(layout.derived(hex));
    if (stored) {
      try {
        const parsed = SumsSchema.safeParse(JSON.parse(stored.toString("utf8")));
        if (parsed.success) return this.remember(hex, parsed.data);
      } catch {
        // unreadable: computed again below
      }
    }
    let pending = this.inFlight.get(hex);
    if (!pending) {
      pending = this.compute(hex).finally(() => this.inFlight.delete(hex));
      this.inFlight.set(hex, pending);
    }
    return pending;
  }

  /** Reads the blob and stores its sums (no cache lookup; bench/compat.ts times this). */
  async compute(hex: string): Promise<Sums> {
    const stream = await this.blobs.read(hex);
    if (!stream) throw new Error(`blob sha256:${hex} does not exist`);
    const md5 = createHash("md5");
    const sha512 = createHash("sha512");
    const sha256 = createHash("sha256");
    for await (const chunk of stream) {
      md5.update(chunk as Buffer);
      sha512.update(chunk as Buffer);
      sha256.update(chunk as Buffer);
    }
    // Never publish sums of bytes that are not the blob (storage corruption).
    if (sha256.digest("hex") !== hex) throw new Error(`blob sha256:${hex} does not match its digest`);
    const sums = { md5: md5.digest("hex"), sha512: sha512.digest("hex") };
    await this.driver.put(layout.derived(hex), Buffer.from(`${JSON.stringify(sums)}\n`));
    return this.remember(hex, sums);
  }

  /** Forgets a blob's sums (GC deleted the blob). */
  async drop(hex: string): Promise<void> {
    this.known.delete(hex);
    await this.driver.delete(layout.derived(hex));
  }

  private remember(hex: string, sums: Sums): Sums {
    if (this.known.size > 100_000) this.known.clear();
    this.known.set(hex, sums);
    return sums;
  }
}
