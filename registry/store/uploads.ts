import { createHash, type Hash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { CodedError } from "../../common/error-codes.js";
import type { ObjectInfo, ObjectWriter, StorageDriver } from "../storage/driver.js";
import { type Blobs, digestMismatch } from "./blobs.js";
import { layout, parseUploadKey } from "./layout.js";

export interface UploadState {
  id: string;
  /** Bytes received so far: the next chunk must start here. */
  offset: number;
  started: Date;
}

const UPLOAD_ID = /^[0-9a-f]{32}$/;

interface Loaded {
  owner: string;
  started: Date;
  pieces: ObjectInfo[];
  offset: number;
}

function unknown(id: string): CodedError {
  return new CodedError(
    "UPLOAD_UNKNOWN",
    `upload ${JSON.stringify(id)} not found (completed, aborted or expired)`,
  );
}

/**
 * Resumable uploads, with all state in storage so that any replica can take the next chunk:
 *
 *   uploads/<id>/info                  who started it (its owner) and when
 *   uploads/<id>/p/<offset, 16 digits> the bytes [offset, offset + size), one object per piece
 *
 * A chunk is stored as pieces of at most the driver's atomicWriteLimit, each created only if its
 * offset is free: two replicas appending at one offset collide on one key and exactly one wins.
 * The upload's offset is the end of the contiguous pieces. A chunk whose connection is cut keeps
 * what arrived (its last piece is published short), so the client resumes from there.
 * Completion reads every piece once through sha256 and, only on a match, has the blob store join
 * them into the blob. An upload belongs to the principal that created it: to anyone else it does
 * not exist.
 */
export class Uploads {
  /**
   * The sha256 of an upload's bytes [0, offset) as this process stored them, so completing an
   * upload whose chunks all came through this process needs no second read of its bytes. Only
   * a hint: an upload appended through another replica, or after a restart, has no entry (or
   * one whose offset no longer matches) and is read back once at completion, as before.
   */
  private readonly running = new Map<string, { hash: Hash; offset: number }>();
  private static readonly RUNNING_LIMIT = 1024;

  constructor(
    private readonly driver: StorageDriver,
    private readonly blobs: Blobs,
  ) {}

  async create(owner: string): Promise<UploadState> {
    const id = randomBytes(16).toString("hex");
    const started = new Date();
    await this.driver.put(layout.uploadInfo(id), Buffer.from(JSON.stringify({ owner, started })));
    return { id, offset: 0, started };
  }

  private async load(id: string, owner: string | null): Promise<Loaded | null> {
    if (!UPLOAD_ID.test(id)) return null;
    const info = await this.driver.get(layout.uploadInfo(id));
    if (!info) return null;
    let parsed: { owner?: unknown; started?: unknown };
    try {
      parsed = JSON.parse(info.toString("utf8")) as typeof parsed;
    } catch {
      return null;
    }
    if (owner !== null && parsed.owner !== owner) return null;
    const pieces: ObjectInfo[] = [];
    let offset = 0;
    for await (const object of this.driver.list(layout.uploadPieces(id))) {
      // In key order, which is offset order; a gap ends the contiguous bytes.
      if (parseUploadKey(object.key)?.piece !== offset) break;
      pieces.push(object);
      offset += object.size;
    }
    const started = new Date(String(parsed.started));
    return {
      owner: String(parsed.owner),
      started: Number.isNaN(started.getTime()) ? new Date(0) : started,
      pieces,
      offset,
    };
  }

  async state(id: string, owner: string): Promise<UploadState | null> {
    const loaded = await this.load(id, owner);
    return loaded ? { id, offset: loaded.offset, started: loaded.started } : null;
  }

  /**
   * Appends a chunk that must start at the current offset (else RANGE_INVALID with the offset to
   * use). If the body fails midway, the bytes received before the failure are kept.
   */
  async append(id: string, owner: string, offset: number, body: Readable): Promise<UploadState> {
    const loaded = await this.load(id, owner);
    if (!loaded) {
      body.resume();
      throw unknown(id);
    }
    if (offset !== loaded.offset) {
      body.resume();
      throw offsetConflict(loaded.offset, offset);
    }
    const limit = this.driver.atomicWriteLimit;
    let running = this.running.get(id);
    this.running.delete(id); // put back only once every byte of this chunk is stored
    if (running?.offset !== offset)
      running = offset === 0 ? { hash: createHash("sha256"), offset: 0 } : undefined;
    let position = offset;
    let piece: { writer: ObjectWriter; start: number; size: number } | null = null;
    // One piece is published while the next one is read (bounded memory, S3 keeps streaming).
    let publishing: Promise<void> = Promise.resolve();
    const finish = () => {
      if (!piece) return;
      const { writer, start } = piece;
      piece = null;
      writer.stream.end();
      const previous = publishing;
      publishing = previous.then(async () => {
        if (!(await writer.done)) throw offsetConflict(await this.offsetOf(id), start);
      });
      publishing.catch(() => {});
    };
    try {
      for await (const received of body) {
        let chunk = received as Buffer;
        while (chunk.length > 0) {
          if (!piece) {
            await publishing; // at most one piece in flight; its failure stops the append
            piece = {
              writer: await this.driver.write(layout.uploadPiece(id, position), { ifAbsent: true }),
              start: position,
              size: 0,
            };
          }
          const take = Math.min(chunk.length, limit - piece.size);
          const part = chunk.subarray(0, take);
          running?.hash.update(part);
          chunk = chunk.subarray(take);
          piece.size += take;
          position += take;
          if (!piece.writer.stream.write(part)) await drained(piece.writer);
          if (piece.size >= limit) finish();
        }
      }
    } catch (err) {
      // The body failed (a cut connection): keep what arrived, so the client resumes after it
      // (unless storing failed, which is then the error).
      const current = piece as { writer: ObjectWriter; size: number } | null;
      if (current && current.size > 0) finish();
      else if (current) current.writer.stream.destroy(err as Error);
      await publishing.catch(() => {});
      throw err;
    }
    finish();
    await publishing;
    if (running) {
      running.offset = position;
      // Abandoned uploads must not grow the map without bound: the oldest entry goes first.
      if (this.running.size >= Uploads.RUNNING_LIMIT) this.running.delete(this.running.keys().next().value!);
      this.running.set(id, running);
    }
    return { id, offset: position, started: loaded.started };
  }

  private async offsetOf(id: string): Promise<number> {
    return (await this.load(id, null))?.offset ?? 0;
  }

  /**
   * Verifies the digest of all bytes received and publishes them as blob `hex`, then forgets the
   * upload. On a mismatch the upload is discarded and DIGEST_INVALID thrown.
   */
  async complete(id: string, owner: string, hex: string): Promise<{ size: number }> {
    const loaded = await this.load(id, owner);
    if (!loaded) throw unknown(id);
    const running = this.running.get(id);
    this.running.delete(id);
    let actual: string;
    if (running && running.offset === loaded.offset) actual = running.hash.digest("hex");
    else {
      const hash = createHash("sha256");
      for (const piece of loaded.pieces) {
        const stream = await this.driver.read(piece.key);
        if (!stream) throw unknown(id); // aborted meanwhile
        for await (const chunk of stream) hash.update(chunk as Buffer);
      }
      actual = hash.digest("hex");
    }
    if (actual !== hex) {
      await this.remove(id);
      throw digestMismatch(hex, actual);
    }
    if (!(await this.blobs.stat(hex))) {
      if (loaded.pieces.length === 0) await this.blobs.put(hex, emptyStream());
      else await this.blobs.publish(hex, loaded.pieces);
    }
    // The joined pieces too: a driver may have moved one into the blob, so a listing misses it,
    // and its emptied folder must still go.
    await this.remove(
      id,
      loaded.pieces.map((p) => p.key),
    );
    return { size: loaded.offset };
  }

  async abort(id: string, owner: string): Promise<boolean> {
    if (!(await this.load(id, owner))) return false;
    await this.remove(id);
    return true;
  }

  /**
   * Deletes an upload's objects (those listed, and `pieces`, which may be gone already): pieces
   * first, the info last (a half-done removal is still an upload).
   */
  async remove(id: string, pieces: string[] = []): Promise<void> {
    if (!UPLOAD_ID.test(id)) return;
    this.running.delete(id);
    const keys = new Set(pieces);
    for await (const object of this.driver.list(layout.upload(id))) keys.add(object.key);
    const ordered = [...keys].sort((a, b) => Number(a.endsWith("/info")) - Number(b.endsWith("/info")));
    // The upload's folder goes with its last object (on a local directory).
    for (const key of ordered) await this.driver.delete(key, { removeEmptyFolders: true });
  }

  /** Every upload (for GC), with the time it was started. */
  async *list(): AsyncIterable<UploadState> {
    const seen = new Set<string>();
    for await (const object of this.driver.list(layout.uploads)) {
      const parsed = parseUploadKey(object.key);
      if (!parsed || seen.has(parsed.id)) continue;
      seen.add(parsed.id);
      const loaded = await this.load(parsed.id, null);
      // Pieces without info: a crash inside create or remove; old enough to go.
      yield loaded
        ? { id: parsed.id, offset: loaded.offset, started: loaded.started }
        : { id: parsed.id, offset: 0, started: object.modified };
    }
  }
}

export function offsetConflict(expected: number, got: number): CodedError {
  const kind = got < expected ? "overlaps bytes already received" : "leaves a gap";
  return new CodedError(
    "RANGE_INVALID",
    `upload chunk starts at ${got}, expected ${expected} (the chunk ${kind})`,
    {
      "Upload-Offset": String(expected),
      Range: `0-${Math.max(0, expected - 1)}`,
    },
  );
}

function drained(writer: ObjectWriter): Promise<void> {
  return new Promise((resolve, reject) => {
    const stream = writer.stream;
    const onDrain = () => {
      stream.off("error", onError);
      resolve();
    };
    const onError = (err: Error) => {
      stream.off("drain", onDrain);
      reject(err);
    };
    stream.once("drain", onDrain);
    stream.once("error", onError);
  });
}

function emptyStream(): Readable {
  return Readable.from([]);
}
