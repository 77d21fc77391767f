import { createHash } from "node:crypto";
import { z } from "zod";
import { keys } from "../keys.js";
import type { Storage } from "../storage/storage.js";

/**
 * md5 and sha512 of a blob, which pveam checks (aplinfo.dat `md5sum`, `sha512sum`) but our
 * manifests do not carry. Computed once from the blob and kept in storage as a derived object
 * keyed by the blob's digest (`derived/sha256/<hex>.json`), so every replica reuses it; GC deletes
 * it with the blob. Concurrent requests in one process share one computation.
 */
const SumsSchema = z.object({
  md5: z.string().regex(/^[0-9a-f]{32}$/),
  sha512: z.string().regex(/^[0-9a-f]{128}$/),
});
export type Sums = z.infer<typeof SumsSchema>;

const inFlight = new Map<string, Promise<Sums>>();
/** A blob's sums never change: each process keeps the ones it has read. */
const known = new Map<string, Sums>();

export async function blobSums(storage: Storage, hex: string): Promise<Sums> {
  const hit = known.get(hex);
  if (hit) return hit;
  const key = keys.derived(hex);
  const stored = await storage.getObject(key);
  if (stored) {
    const parsed = SumsSchema.safeParse(JSON.parse(stored.toString("utf8")));
    if (parsed.success) return remember(hex, parsed.data);
  }
  let pending = inFlight.get(hex);
  if (!pending) {
    pending = computeBlobSums(storage, hex).finally(() => inFlight.delete(hex));
    inFlight.set(hex, pending);
  }
  return pending;
}

/** Reads the blob and stores its sums (no cache lookup; bench/compat.ts times this). */
export async function computeBlobSums(storage: Storage, hex: string): Promise<Sums> {
  const stream = await storage.readBlob(hex);
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
  await storage.putObject(keys.derived(hex), Buffer.from(`${JSON.stringify(sums)}\n`));
  return remember(hex, sums);
}

function remember(hex: string, sums: Sums): Sums {
  if (known.size > 100_000) known.clear();
  known.set(hex, sums);
  return sums;
}
