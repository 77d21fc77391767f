import type { Readable, Writable } from "node:stream";

/**
 * Where the registry keeps its data (DESIGN.md "Storage"). Two backends implement this: a local
 * directory and an S3-compatible bucket. Both keep the same key layout:
 *
 *   blobs/sha256/<hex>                            immutable, content-addressed
 *   templates/<name>/versions/<version>.json      immutable manifest (create-if-absent)
 *   templates/<name>/versions/<version>.json.asc  manifest signature
 *   templates/<name>/tags/<tag>                   mutable pointer
 *   uploads/<id>/...                              in-progress uploads (and who opened each)
 *
 * Every backend must pass the one conformance suite in test/storage/conformance.ts. Registry
 * processes keep no state of their own: anything two replicas must agree on lives here.
 */
export interface ObjectInfo {
  key: string;
  size: number;
  modified: Date;
}

export interface BlobInfo {
  size: number;
  modified: Date;
}

/** Inclusive byte range, as in HTTP Range. */
export interface ByteRange {
  start: number;
  end: number;
}

export interface UploadState {
  id: string;
  /** Bytes received so far: the next chunk must start here. */
  offset: number;
  started: Date;
  /**
   * Who opened it (an opaque hash, see auth.ts uploadOwner), as given to createUpload; null
   * when none was given or the upload predates owners. Only uploadState must report it.
   */
  owner?: string | null;
}

/**
 * Writes an immutable object (a manifest, a signature) once: "created" when this call wrote it,
 * "same" when the key already held these exact bytes (a repeated push or mirror run), "other"
 * when it holds different bytes, which are left as they are. An object that vanishes between
 * the create and the read (a DELETE meanwhile) is neither: the create is tried again.
 */
export async function putImmutable(
  storage: Storage,
  key: string,
  data: Buffer,
): Promise<"created" | "same" | "other"> {
  for (let attempt = 0; attempt < 5; attempt++) {
    if (await storage.putObjectIfAbsent(key, data)) return "created";
    const there = await storage.getObject(key);
    if (there) return there.equals(data) ? "same" : "other";
  }
  throw new Error(`${key} kept appearing and vanishing while it was written (concurrent deletes)`);
}

export class DigestMismatchError extends Error {
  constructor(
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`digest mismatch: expected sha256:${expected}, got sha256:${actual}`);
    this.name = "DigestMismatchError";
  }
}

export class UploadOffsetError extends Error {
  constructor(
    readonly expected: number,
    readonly got: number,
  ) {
    super(`upload chunk starts at ${got}, expected ${expected}`);
    this.name = "UploadOffsetError";
  }
}

/** appendUpload/completeUpload on an id that does not exist (never created, completed, aborted or expired). */
export class UploadNotFoundError extends Error {
  constructor(readonly id: string) {
    super(`upload ${JSON.stringify(id)} not found`);
    this.name = "UploadNotFoundError";
  }
}

export interface Storage {
  /** "local" or "s3", for logs and /metrics. */
  readonly kind: string;
  /** Throws a clear error when the backend cannot be reached or used (readiness). */
  check(): Promise<void>;

  // Blobs: content-addressed by sha256 hex.
  statBlob(hex: string): Promise<BlobInfo | null>;
  /** Streams the blob or a range of it; null when absent. */
  readBlob(hex: string, range?: ByteRange): Promise<Readable | null>;
  /**
   * Stores a blob, hashing while streaming; it becomes visible only when the digest matches.
   * On mismatch throws DigestMismatchError and keeps nothing. An existing blob is left as is.
   */
  putBlob(hex: string, body: Readable): Promise<{ size: number; created: boolean }>;
  deleteBlob(hex: string): Promise<void>;
  listBlobs(): AsyncIterable<{ hex: string } & BlobInfo>;

  // Small objects: manifests, signatures, tags (and whatever else the registry keys).
  getObject(key: string): Promise<Buffer | null>;
  statObject(key: string): Promise<ObjectInfo | null>;
  /** Atomic create-if-absent; false (and nothing written) when the key already exists. */
  putObjectIfAbsent(key: string, data: Buffer): Promise<boolean>;
  /** Atomic replace: readers see the old or the new bytes, never a mix. */
  putObject(key: string, data: Buffer): Promise<void>;
  deleteObject(key: string): Promise<void>;
  /** Every object whose key starts with `prefix`, in key order. */
  list(prefix: string): AsyncIterable<ObjectInfo>;

  // Resumable uploads: state lives in storage, so a chunk may land on any replica.
  /** Opens an upload, storing `owner` with it (the API binds an upload id to its opener). */
  createUpload(owner?: string): Promise<UploadState>;
  /** The upload's offset, start and owner; null when it does not exist. */
  uploadState(id: string): Promise<UploadState | null>;
  /**
   * Appends a chunk that must start at the current offset (else UploadOffsetError; unknown id:
   * UploadNotFoundError); returns the new state. If the body stream fails midway, the bytes
   * received before the failure may be kept: the offset then tells where to resume.
   */
  appendUpload(id: string, offset: number, body: Readable): Promise<UploadState>;
  /**
   * Verifies the digest of all bytes received and publishes them as a blob, then forgets the
   * upload. DigestMismatchError otherwise (the upload is discarded); UploadNotFoundError for an unknown id.
   */
  completeUpload(id: string, hex: string): Promise<{ size: number }>;
  abortUpload(id: string): Promise<void>;
  listUploads(): AsyncIterable<UploadState>;

  // Optional capabilities (GC and downloads call them when a backend has them).
  /**
   * Writes that a crashed process never finished and that listUploads does not show (S3:
   * incomplete multipart uploads, which cost storage and are invisible to listing). GC aborts
   * the ones started before its grace period.
   */
  listPartialWrites?(): AsyncIterable<PartialWrite>;
  abortPartialWrite?(id: string): Promise<void>;
  /**
   * Where to redirect a blob download instead of streaming it (S3 with redirects switched on: a
   * presigned URL); null to stream. Only ever for blobs, never for manifests or signatures.
   */
  blobRedirectUrl?(hex: string): Promise<string | null>;
}

/**
 * A blob stream that can write itself into a response faster than piping (local files: reused
 * page-aligned buffers). readBlob may return one; sendStream uses it when it writes to a socket.
 */
export interface DirectSendable {
  /** Sends every byte to `out` and ends it; destroys `out` on a read error. */
  sendTo(out: Writable, onBytes: (n: number) => void): Promise<void>;
}

export function isDirectSendable(stream: Readable): stream is Readable & DirectSendable {
  return typeof (stream as Partial<DirectSendable>).sendTo === "function";
}

export interface PartialWrite {
  /** Opaque, for abortPartialWrite (and logs). */
  id: string;
  started: Date;
}
