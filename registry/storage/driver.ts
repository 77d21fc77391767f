import type { Readable, Writable } from "node:stream";

/**
 * A storage driver: the narrow interface each backend implements (a local directory, an
 * S3-compatible bucket). It stores opaque objects under `/`-separated keys and knows nothing of
 * templates, digests or uploads: the store (registry/store/) builds all of that on top, once,
 * for every backend. Every driver must pass test/storage/driver-conformance.ts.
 *
 * Guarantees every driver gives:
 * - a reader never sees an object half-written: `put` replaces atomically, a `write` becomes
 *   visible only when its stream ended and `done` resolved true, and nothing is left visible
 *   when the stream is destroyed;
 * - `putIfAbsent` and `write(..., { ifAbsent: true })` create an object only if its key is free,
 *   atomically across processes and replicas (exactly one of two racing writers wins);
 * - `list` returns every object under a prefix, in key order, including objects just written.
 */
export interface ObjectInfo {
  key: string;
  size: number;
  modified: Date;
}

/** Inclusive byte range, as in HTTP Range. */
export interface ByteRange {
  start: number;
  end: number;
}

export interface ObjectWriter {
  /** The object's bytes: end() it to publish them, destroy() it to discard them. */
  readonly stream: Writable;
  /**
   * Settles after the stream ended or failed: true when the object is visible at its key, false
   * when `ifAbsent` found the key taken (nothing written). Rejects when the stream was destroyed
   * or storage failed; nothing is visible then.
   */
  readonly done: Promise<boolean>;
}

export interface WriteOptions {
  /** Create only if the key is free. The object must fit in `atomicWriteLimit` bytes. */
  ifAbsent?: boolean;
}

export interface DeleteOptions {
  /**
   * Where the backend has folders (a local directory), also remove the key's parent folders
   * that the delete leaves empty. The caller asks for it where folders come and go with their
   * contents (an upload's); busy folders (GC's marks) are kept, or they would be made and
   * removed again all the time.
   */
  removeEmptyFolders?: boolean;
}

export interface StorageDriver {
  /** "local" or "s3", for logs and /metrics. */
  readonly kind: string;
  /**
   * The largest object `write(..., { ifAbsent: true })` takes (S3 can only create-if-absent in
   * one request, so such writes are buffered); Infinity when there is no limit.
   */
  readonly atomicWriteLimit: number;
  /** Throws a clear error when the backend cannot be reached or used (readiness). */
  check(): Promise<void>;

  get(key: string): Promise<Buffer | null>;
  stat(key: string): Promise<ObjectInfo | null>;
  /** Atomic replace: readers see the old or the new bytes, never a mix. */
  put(key: string, data: Buffer): Promise<void>;
  /** Atomic create-if-absent; false (and nothing written) when the key exists. */
  putIfAbsent(key: string, data: Buffer): Promise<boolean>;
  delete(key: string, options?: DeleteOptions): Promise<void>;
  /** Every object whose key starts with `prefix`, in key order. */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /** Streams the object or a range of it; null when absent. A started stream survives a delete. */
  read(key: string, range?: ByteRange): Promise<Readable | null>;
  /** Opens a streamed write (large objects: blobs, upload pieces). */
  write(key: string, options?: WriteOptions): Promise<ObjectWriter>;

  // Optional capabilities: the store uses them when a driver has them.
  /**
   * Makes `target` the concatenation of `sources` (existing objects, in order) without passing
   * the bytes through this process where the backend can (a rename, a server-side copy).
   * The sources stay (the caller deletes them).
   */
  concat?(target: string, sources: ObjectInfo[]): Promise<void>;
  /** Where to send a client to download the object directly (a presigned URL), or null to stream it. */
  downloadUrl?(key: string): Promise<string | null>;
  /**
   * Removes writes a crashed process left unfinished and that `list` does not show (temporary
   * files, incomplete S3 multipart uploads) started before `olderThan`; returns how many.
   */
  sweepAbandoned?(olderThan: Date): Promise<number>;
}

/**
 * A stream that can write itself into a response faster than piping (local files: reused
 * page-aligned buffers). `read` may return one; the HTTP layer uses it when it writes to a socket.
 */
export interface DirectSendable {
  /** Sends every byte to `out` and ends it; destroys `out` on a read error. */
  sendTo(out: Writable, onBytes: (n: number) => void): Promise<void>;
}

export function isDirectSendable(stream: Readable): stream is Readable & DirectSendable {
  return typeof (stream as Partial<DirectSendable>).sendTo === "function";
}

/** Keys are relative, `/`-separated, without empty, `.` or `..` segments, and without NUL. */
export function keyProblem(key: string): string | null {
  if (key.length === 0) return "is empty";
  if (key.length > 1024) return "is longer than 1024 characters";
  if (key.includes("\0")) return "contains NUL";
  if (key.startsWith("/")) return "is absolute";
  if (key.split("/").some((part) => part === "" || part === "." || part === ".."))
    return "has an empty, '.' or '..' segment";
  return null;
}

export function assertKey(key: string): string {
  const problem = keyProblem(key);
  if (problem) throw new Error(`invalid storage key ${JSON.stringify(key)}: ${problem}`);
  return key;
}
