import { keys, parseTemplateKey } from "./keys.js";
import type { Storage } from "./storage/storage.js";

/**
 * Online garbage collection (DESIGN.md "Storage"): deletes blobs that no manifest names and that
 * are older than the grace period, and expires abandoned uploads. There is no read-only window:
 * - a blob being pushed right now is young, so the grace period protects it until its manifest
 *   exists;
 * - manifests are listed after the blobs, and listed again just before deleting, so a manifest
 *   written meanwhile that names an old blob saves it; the manifest PUT re-checks its blobs after
 *   writing and withdraws the manifest if one vanished, which closes the remaining window;
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

  let deleted = 0;
  let bytesFreed = 0;
  for (const [hex, size] of candidates) {
    if (referenced.has(hex)) continue;
    if (!dryRun) {
      const info = await storage.statBlob(hex);
      if (!info || info.modified.getTime() >= cutoff) continue; // gone, or written again meanwhile
      await storage.deleteBlob(hex);
      await storage.deleteObject(keys.derived(hex)); // its md5/sha512 (registry/compat/checksums.ts)
    }
    deleted++;
    bytesFreed += size;
    options.onDelete?.(hex, size);
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
