import { z } from "zod";

/**
 * Delta patches between versions of one template (docs in README "Delta updates"): a zstd
 * `--patch-from` patch that turns the uncompressed tar of an older version into this version's
 * tar. Deltas are an optimisation outside the signed manifest: whoever applies one checks the
 * result against the signed manifest's `rootfs.tarSha256`.
 */
export const DELTA_ALGORITHM = "zstd-patch-from";

/**
 * The zstd window (log2 bytes) a patch between tars of these sizes needs: the window must
 * reach back over the whole old tar (the patch's dictionary) from the end of the new one, as
 * zstd's own --patch-from chooses. Decompressing needs about 2^windowLog bytes of memory plus
 * the old tar (mapped).
 */
export function patchWindowLog(oldSize: number, newSize: number): number {
  const max = Math.max(oldSize, newSize, 1);
  return Math.max(DELTA_MIN_WINDOW_LOG, Math.ceil(Math.log2(max)) + 1);
}

/** The largest window a client accepts by default: 2^30 bytes (1 GiB), tars up to 512 MiB. */
export const DEFAULT_MAX_WINDOW_LOG = 30;
/** The smallest limit a host may set: every patch's window is at least 2^20 (patchWindowLog). */
export const DELTA_MIN_WINDOW_LOG = 20;
/** zstd's own limit for --long on 64-bit hosts. */
export const ZSTD_MAX_WINDOW_LOG = 31;

const hex = z.string().regex(/^[0-9a-f]{64}$/, "expected 64 hex characters");

export const DeltaEntrySchema = z.looseObject({
  algorithm: z.literal(DELTA_ALGORITHM),
  /** The version the patch starts from (informative: fromTarSha256 decides). */
  fromVersion: z.string().max(256),
  /** The uncompressed tar the patch applies to. */
  fromTarSha256: hex,
  /** The patch blob. */
  digest: z.string().regex(/^sha256:[0-9a-f]{64}$/, "expected sha256:<64 hex>"),
  size: z.number().int().nonnegative(),
  /** The zstd window the patch needs (zstd -d --long=<windowLog>). */
  windowLog: z.number().int().min(10).max(ZSTD_MAX_WINDOW_LOG),
});
export type DeltaEntry = z.infer<typeof DeltaEntrySchema>;

export const DeltaIndexSchema = z.looseObject({
  schemaVersion: z.literal(1),
  name: z.string(),
  version: z.string(),
  /** The tar every patch here produces (the signed manifest's rootfs.tarSha256). */
  tarSha256: hex,
  deltas: z.array(DeltaEntrySchema).max(64),
});
export type DeltaIndex = z.infer<typeof DeltaIndexSchema>;

/** At most this many bytes of delta index are read. */
export const MAX_DELTA_INDEX_BYTES = 64 * 1024;
