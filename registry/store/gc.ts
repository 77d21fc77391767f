import type { StorageDriver } from "../storage/driver.js";
import type { Blobs } from "./blobs.js";
import type { DeltaIndexes } from "./deltas.js";
import type { DerivedSums } from "./derived.js";
import { GcRun, pinnedBlobs, removeLeftovers } from "./gc-protocol.js";
import { layout, parseTemplateKey } from "./layout.js";
import type { RetentionRule, RetentionVictim } from "./retention.js";
import type { Uploads } from "./uploads.js";

/**
 * Online garbage collection (docs/storage.md): deletes blobs that no manifest names and that
 * are older than the grace period, and expires abandoned uploads. There is no read-only window.
 *
 * The rule: once a manifest PUT (or a mirror into storage) is acknowledged, the manifest and
 * every blob it names stay until a DELETE removes the manifest. The protocol (gc-protocol.ts,
 * publish.ts):
 * - a publisher (1) writes a pin naming its blobs, (2) then checks that no live GC run has
 *   marked them, (3) then that they exist with the right size, (4) then creates the manifest if
 *   absent ("created", or "same" when identical bytes are there), (5) then removes its pin. It
 *   never takes a manifest back, so no request can undo what another one acknowledged;
 * - a run lists blobs (candidates: older than the grace period), lists manifests twice (fewer
 *   marks), writes its run record and heartbeats it, marks each unreferenced candidate
 *   (gc/pending/<hex>), then lists pins and after them every manifest again (the last scan),
 *   and deletes only blobs that are in neither, whose mark is still its own, and only while its
 *   heartbeat is fresh.
 * Why no acknowledged manifest ever names a deleted blob: take a publisher P and a run R that
 * deletes blob B which P's manifest names. If R's mark was written before P's check (2), P saw
 * it with its run alive (503), or saw it with its run dead: then R's heartbeat had lapsed and R
 * deletes no more; or it read no mark of R's: R's mark, once replaced or removed, never comes
 * back and R deletes only under it, so R deleted B before that, and P's check (3) failed (400).
 * Else R marked after P's pin (1), so R's last scan, which lists pins after the marks, finds
 * P's pin, or, if P removed it already, lists the manifests after that and finds P's manifest
 * (written before the pin was removed, and never withdrawn). Either way R keeps B.
 * The timeouts bound the argument: a pin counts for PIN_TTL_MS, and P gives up before its write
 * when half of that has passed since its pin; a run's marks count while its heartbeat is
 * younger than RUN_TIMEOUT_MS, and the run deletes only while its own is younger than half of
 * that. So the replicas' clocks must agree to within a few seconds, and a process must not
 * stall for longer than those margins between such a check and its next storage write.
 * Also:
 * - the grace period does not guard acknowledged pushes (pins and marks do); it spares blobs
 *   uploaded for a manifest not yet sent, so their pushers need not upload them again;
 * - any "sha256:<hex>" string anywhere in a manifest counts as a reference, so fields added to
 *   the manifest later (signature blobs, say) are safe without changing this code;
 * - a manifest that cannot be read stops the run: better keep garbage than lose a blob;
 * - what a crashed run leaves (marks, its run record) blocks no push once its heartbeat is
 *   RUN_TIMEOUT_MS old, and the next run removes it; a crashed publisher's pin keeps its blobs
 *   for PIN_TTL_MS, then the next run removes it.
 */
export interface GcOptions {
  graceMs: number;
  uploadExpiryMs: number;
  dryRun?: boolean;
  now?: number;
  /** Called for each blob deleted (or that would be, in a dry run). */
  onDelete?: (hex: string, size: number) => void;
  /** Retention rules applied first (retention.ts); the versions they remove free their blobs in this run. */
  retention?: RetentionRule[];
  /** Tests: a shorter run timeout and heartbeat (gc-protocol.ts; a longer timeout is ignored). */
  runTimeoutMs?: number;
  heartbeatMs?: number;
}

export interface GcReport {
  dryRun: boolean;
  manifests: number;
  blobs: number;
  referenced: number;
  deleted: number;
  bytesFreed: number;
  keptYoung: number;
  uploadsExpired: number;
  partialWritesAborted: number;
  /** Delta indexes of versions that no longer exist (removed, or that would be in a dry run). */
  deltaIndexesDropped: number;
  /** Versions removed by retention rules (or that would be, in a dry run). */
  retention: RetentionVictim[];
  ms: number;
}

const DIGEST_IN_TEXT = /sha256:([0-9a-f]{64})/g;

/** What GC works on: the driver (marks, pins, manifests) and the store's blobs, uploads and derived sums. */
export interface GcTarget {
  driver: StorageDriver;
  blobs: Blobs;
  uploads: Uploads;
  derived: DerivedSums;
  deltas: DeltaIndexes;
}

export async function runGc(
  target: GcTarget,
  options: GcOptions,
  retention: RetentionVictim[] = [],
): Promise<GcReport> {
  const { driver: storage, blobs: blobStore, uploads, derived, deltas } = target;
  const started = Date.now();
  const now = options.now ?? started;
  const cutoff = now - options.graceMs;
  const dryRun = options.dryRun ?? false;

  let blobs = 0;
  let keptYoung = 0;
  const candidates = new Map<string, number>();
  for await (const blob of blobStore.list()) {
    blobs++;
    if (blob.modified.getTime() < cutoff) candidates.set(blob.hex, blob.size);
    else keptYoung++;
  }

  const seen = new Set<string>();
  const referenced = new Set<string>();
  await scanManifests(storage, seen, referenced);
  await scanManifests(storage, seen, referenced); // catches manifests pushed during the first scan
  const deltaIndexesDropped = await scanDeltaIndexes(storage, deltas, referenced, !dryRun);

  const doomed = [...candidates].filter(([hex]) => !referenced.has(hex));
  let deleted = 0;
  let bytesFreed = 0;
  if (dryRun) {
    for (const [hex, size] of doomed) {
      deleted++;
      bytesFreed += size;
      options.onDelete?.(hex, size);
    }
  } else {
    await removeLeftovers(storage);
    if (doomed.length > 0) {
      const run = new GcRun(storage, options.runTimeoutMs, options.heartbeatMs);
      await run.start();
      const ours = run.mark();
      // Another replica's GC may mark the same blob after us: then only it may delete the blob
      // (its last scan came after its mark), and only it removes that mark.
      const stillOurs = async (hex: string) => (await storage.get(layout.gcMark(hex)))?.equals(ours);
      const marked: string[] = [];
      try {
        for (const [hex] of doomed) {
          await storage.put(layout.gcMark(hex), ours);
          marked.push(hex);
        }
        // The last scan, after every mark: pins first, then every manifest (not only new keys:
        // a version deleted and pushed again since has the same key and may name other blobs).
        const pinned = await pinnedBlobs(storage);
        const named = new Set<string>();
        await scanManifests(storage, new Set(), named);
        await scanDeltaIndexes(storage, deltas, named, false);
        for (const hex of named) referenced.add(hex);
        for (const [hex, size] of doomed) {
          if (pinned.has(hex) || named.has(hex)) continue;
          if (!(await stillOurs(hex))) continue;
          const info = await blobStore.stat(hex);
          if (!info || info.modified.getTime() >= cutoff) continue; // gone, or written again meanwhile
          if (!run.mayDelete()) {
            // Checked last, right before the delete: the window a stall could widen is one call.
            throw new Error(
              "gc stopped: its heartbeat in storage lapsed (storage too slow, or the process stalled), so pushes may no longer honour its marks",
            );
          }
          await blobStore.delete(hex);
          await derived.drop(hex); // its md5/sha512 (derived.ts)
          deleted++;
          bytesFreed += size;
          options.onDelete?.(hex, size);
        }
      } finally {
        for (const hex of marked) if (await stillOurs(hex)) await storage.delete(layout.gcMark(hex));
        await run.end();
      }
    }
  }

  let uploadsExpired = 0;
  for await (const upload of uploads.list()) {
    if (upload.started.getTime() < now - options.uploadExpiryMs) {
      if (!dryRun) await uploads.remove(upload.id);
      uploadsExpired++;
    }
  }

  // Writes a crashed process left unfinished (S3: incomplete multipart uploads, invisible to
  // listing but stored and billed; local: temporary files). A write in flight is as young as
  // an upload in progress, whatever the grace period (which may be 0): the same age applies.
  let partialWritesAborted = 0;
  if (!dryRun && storage.sweepAbandoned)
    partialWritesAborted = await storage.sweepAbandoned(
      new Date(Math.min(cutoff, now - options.uploadExpiryMs)),
    );

  return {
    dryRun,
    manifests: seen.size,
    blobs,
    referenced: referenced.size,
    deleted,
    bytesFreed,
    keptYoung,
    uploadsExpired,
    partialWritesAborted,
    deltaIndexesDropped,
    retention,
    ms: Date.now() - started,
  };
}

async function scanManifests(
  storage: StorageDriver,
  seen: Set<string>,
  referenced: Set<string>,
): Promise<void> {
  for await (const obj of storage.list(layout.templates)) {
    if (seen.has(obj.key) || parseTemplateKey(obj.key)?.kind !== "manifest") continue;
    const bytes = await storage.get(obj.key);
    if (!bytes) continue; // deleted meanwhile: its blobs may go
    const text = bytes.toString("utf8");
    try {
      JSON.parse(text);
    } catch {
      throw new Error(`gc stopped: manifest ${obj.key} is not valid JSON, so its blobs cannot be known`);
    }
    for (const m of text.matchAll(DIGEST_IN_TEXT)) referenced.add(m[1]!);
    seen.add(obj.key);
  }
}

/**
 * Delta indexes: the patches an index of an existing version names are referenced; an index
 * whose version is gone is dropped (with `drop`), so its patches go once past the grace period.
 * Returns how many indexes belong to deleted versions.
 */
async function scanDeltaIndexes(
  storage: StorageDriver,
  deltas: DeltaIndexes,
  referenced: Set<string>,
  drop: boolean,
): Promise<number> {
  let orphans = 0;
  for await (const index of deltas.list()) {
    if (await storage.stat(layout.manifest(index.name, index.version))) {
      for (const m of index.bytes.toString("utf8").matchAll(DIGEST_IN_TEXT)) referenced.add(m[1]!);
      continue;
    }
    orphans++;
    if (drop) await deltas.delete(index.name, index.version);
  }
  return orphans;
}
