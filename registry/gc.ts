import { randomBytes } from "node:crypto";
import { keys, parseTemplateKey } from "./keys.js";
import type { Storage } from "./storage/storage.js";

/**
 * Online garbage collection (DESIGN.md "Storage"): deletes blobs that no manifest names and that
 * are older than the grace period, and expires abandoned uploads. There is no read-only window:
 * - a blob being pushed right now is young, so the grace period protects it until its manifest
 *   exists;
 * - manifests are listed after the blobs and listed again, so a manifest written meanwhile that
 *   names an old blob saves it;
 * - then GC marks each blob it means to delete (gc/pending/<hex>), lists manifests once more, and
 *   deletes only what is still unreferenced. A manifest PUT re-checks its blobs after writing and
 *   withdraws the manifest if one is gone or marked. Either the PUT's re-check came before the
 *   mark, so its manifest was written before the last listing and saves the blob, or it sees the
 *   mark (or the blob gone) and backs off: no accepted manifest ever names a deleted blob;
 * - any "sha256:<hex>" string anywhere in a manifest counts as a reference, so fields added to
 *   the manifest later (signature blobs, say) are safe without changing this code;
 * - a manifest that cannot be read stops the run: better keep garbage than lose a blob.
 */
export interface GcOptions {
  graceMs: number;
  uploadExpiryMs: number;
  dryRun?: boolean;
  now?: number;
  /** Called for each blob deleted (or that would be, in a dry run). */
  onDelete?: (hex: string, size: number) => void;
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
  ms: number;
}

const DIGEST_IN_TEXT = /sha256:([0-9a-f]{64})/g;
/**
 * A mark older than this is a crashed GC's leftover: pushes stop honouring it, the next GC
 * removes it, and a GC never deletes a blob whose mark it made longer than half of this ago.
 */
export const GC_MARK_TTL_MS = 60 * 60 * 1000;

/** Whether GC is about to delete this blob (a fresh mark exists). */
export async function blobMarkedForGc(storage: Storage, hex: string, now = Date.now()): Promise<boolean> {
  const at = markTime(await storage.getObject(keys.gcPending(hex)));
  return at !== null && now - at < GC_MARK_TTL_MS;
}

/** A mark holds "<ms since epoch> <run id>": when, and which GC run (replicas may overlap). */
function markTime(mark: Buffer | null): number | null {
  const at = Number(mark?.toString("utf8").split(" ")[0]);
  return mark && Number.isFinite(at) ? at : null;
}

export async function runGc(storage: Storage, options: GcOptions): Promise<GcReport> {
  const started = Date.now();
  const now = options.now ?? started;
  const cutoff = now - options.graceMs;
  const dryRun = options.dryRun ?? false;

  let blobs = 0;
  let keptYoung = 0;
  const candidates = new Map<string, number>();
  for await (const blob of storage.listBlobs()) {
    blobs++;
    if (blob.modified.getTime() < cutoff) candidates.set(blob.hex, blob.size);
    else keptYoung++;
  }

  const seen = new Set<string>();
  const referenced = new Set<string>();
  await scanManifests(storage, seen, referenced);
  await scanManifests(storage, seen, referenced); // catches manifests pushed during the first scan

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
    await removeStaleMarks(storage, Date.now());
    const markedAt = Date.now();
    const ours = Buffer.from(`${markedAt} ${randomBytes(8).toString("hex")}`);
    // Another replica's GC may mark the same blob after us: then only it may delete the blob
    // (its last listing came after its mark), and only it removes that mark.
    const stillOurs = async (hex: string) => (await storage.getObject(keys.gcPending(hex)))?.equals(ours);
    const marked: string[] = [];
    try {
      for (const [hex] of doomed) {
        await storage.putObject(keys.gcPending(hex), ours);
        marked.push(hex);
      }
      await scanManifests(storage, seen, referenced); // the last listing: after every mark
      for (const [hex, size] of doomed) {
        if (referenced.has(hex)) continue;
        if (Date.now() - markedAt > GC_MARK_TTL_MS / 2) break; // pushes may soon ignore the marks
        if (!(await stillOurs(hex))) continue;
        const info = await storage.statBlob(hex);
        if (!info || info.modified.getTime() >= cutoff) continue; // gone, or written again meanwhile
        await storage.deleteBlob(hex);
        await storage.deleteObject(keys.derived(hex)); // its md5/sha512 (registry/compat/checksums.ts)
        deleted++;
        bytesFreed += size;
        options.onDelete?.(hex, size);
      }
    } finally {
      for (const hex of marked) if (await stillOurs(hex)) await storage.deleteObject(keys.gcPending(hex));
    }
  }

  let uploadsExpired = 0;
  for await (const upload of storage.listUploads()) {
    if (upload.started.getTime() < now - options.uploadExpiryMs) {
      if (!dryRun) await storage.abortUpload(upload.id);
      uploadsExpired++;
    }
  }

  // Writes a crashed process left unfinished (S3: incomplete multipart uploads, invisible to
  // listing but stored and billed); older than the grace period, nobody is still writing them.
  let partialWritesAborted = 0;
  if (storage.listPartialWrites && storage.abortPartialWrite) {
    for await (const partial of storage.listPartialWrites()) {
      if (partial.started.getTime() >= cutoff) continue;
      if (!dryRun) await storage.abortPartialWrite(partial.id);
      partialWritesAborted++;
    }
  }

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
    ms: Date.now() - started,
  };
}

/** Marks a crashed GC left behind (older than GC_MARK_TTL_MS): pushes already ignore them. */
async function removeStaleMarks(storage: Storage, now: number): Promise<void> {
  for await (const obj of storage.list(keys.gcPendingPrefix)) {
    const at = markTime(await storage.getObject(obj.key));
    if (at === null || now - at >= GC_MARK_TTL_MS) await storage.deleteObject(obj.key);
  }
}

async function scanManifests(storage: Storage, seen: Set<string>, referenced: Set<string>): Promise<void> {
  for await (const obj of storage.list(keys.templates)) {
    if (seen.has(obj.key) || parseTemplateKey(obj.key)?.kind !== "manifest") continue;
    const bytes = await storage.getObject(obj.key);
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
