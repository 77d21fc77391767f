import { createHash, randomBytes } from "node:crypto";
import type { Readable } from "node:stream";
import {
  AbortMultipartUploadCommand,
  type CompletedPart,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  PutObjectCommand,
  UploadPartCommand,
  UploadPartCopyCommand,
} from "@aws-sdk/client-s3";
import type { S3Storage } from "./s3.js";
import { deleteKeys, isNotFound, listKeys, s3Status, TaskPool } from "./s3-util.js";
import { DigestMismatchError, UploadNotFoundError, UploadOffsetError, type UploadState } from "./storage.js";

const UPLOAD_ID = /^[0-9a-f]{32}$/;
/** Incoming chunks are stored in pieces of at most this size (bounded memory per request). */
export const PIECE_SIZE = 8 * 1024 * 1024;
/** S3's smallest part (every part but the last). */
const MIN_PART = 5 * 1024 * 1024;
const PARALLEL = 4;

interface Piece {
  key: string;
  start: number;
  size: number;
}

/**
 * Resumable uploads on S3, with all state in the bucket so that any replica can take the next
 * chunk (DESIGN.md: registry processes keep no state):
 *
 *   uploads/<id>/info                   marker; its LastModified is when the upload started,
 *                                       its body {"owner": <hash>} who opened it
 *   uploads/<id>/p/<start, 16 digits>   the bytes [start, start+size), one object per piece
 *
 * A chunk is stored as pieces of at most 8 MiB, each a PutObject with If-None-Match: * on its
 * start offset: two replicas appending at the same offset collide on the same key and exactly one
 * wins. The offset is the end of the contiguous pieces (one listing). A chunk whose connection is
 * cut keeps the pieces received so far, plus what was buffered, so the client resumes from there.
 *
 * Why not one multipart upload with the chunks as parts: S3 parts must be at least 5 MiB (all
 * but the last), and clients send chunks of any size. Completion composes the pieces into a
 * multipart upload at blobs/sha256/<hex>: a piece of 5 MiB or more becomes a part by server-side
 * copy (UploadPartCopy), runs of smaller pieces are concatenated into parts of at least 5 MiB.
 * All bytes are read once through sha256 on the way (the hash state cannot be stored between
 * requests); the multipart upload is completed only when the digest matches, else aborted.
 */
export class S3Uploads {
  constructor(private readonly s: S3Storage) {}

  private dir(id: string): string {
    return this.s.key(`uploads/${id}/`);
  }

  private pieceKey(id: string, start: number): string {
    return `${this.dir(id)}p/${String(start).padStart(16, "0")}`;
  }

  async create(owner?: string): Promise<UploadState> {
    const id = randomBytes(16).toString("hex");
    const info = Buffer.from(JSON.stringify(owner ? { owner } : {}));
    await this.s.client.send(
      new PutObjectCommand({ Bucket: this.s.bucket, Key: `${this.dir(id)}info`, Body: info }),
    );
    return { id, offset: 0, started: new Date(), owner: owner ?? null };
  }

  /** Who opened the upload, from its info marker (null: none recorded, or no such upload). */
  private async owner(id: string): Promise<string | null> {
    try {
      const out = await this.s.client.send(
        new GetObjectCommand({ Bucket: this.s.bucket, Key: `${this.dir(id)}info` }),
      );
      const info = JSON.parse((await out.Body!.transformToString()) || "{}") as { owner?: unknown };
      return typeof info.owner === "string" ? info.owner : null;
    } catch (err) {
      if (isNotFound(err) || err instanceof SyntaxError) return null;
      throw err;
    }
  }

  /** The upload's start time and contiguous pieces; null if it does not exist. */
  private async load(id: string): Promise<{ started: Date; pieces: Piece[]; offset: number } | null> {
    if (!UPLOAD_ID.test(id)) return null;
    const dir = this.dir(id);
    let started: Date | undefined;
    const pieces: Piece[] = [];
    let offset = 0;
    for await (const o of listKeys(this.s.client, this.s.bucket, dir)) {
      if (!("Key" in o) || !o.Key) continue;
      const rest = o.Key.slice(dir.length);
      if (rest === "info") started = o.LastModified ?? new Date(0);
      const m = /^p\/(\d{16})$/.exec(rest);
      // Keys sort by start offset; stop at a gap (cannot happen with sequential pieces, but be safe).
      if (m && Number(m[1]) === offset) {
        pieces.push({ key: o.Key, start: offset, size: o.Size ?? 0 });
        offset += o.Size ?? 0;
      }
    }
    return started ? { started, pieces, offset } : null;
  }

  /** `withOwner`: also read who opened it (one GET, in parallel with the listing); GC does not need it. */
  async state(id: string, withOwner = true): Promise<UploadState | null> {
    if (!UPLOAD_ID.test(id)) return null;
    const owner = withOwner ? this.owner(id) : Promise.resolve(null);
    owner.catch(() => {}); // awaited below, after the listing
    const loaded = await this.load(id);
    if (!loaded) return null;
    return { id, offset: loaded.offset, started: loaded.started, owner: await owner };
  }

  async append(id: string, offset: number, body: Readable): Promise<UploadState> {
    const loaded = await this.load(id);
    if (!loaded) throw new UploadNotFoundError(id);
    if (offset !== loaded.offset) throw new UploadOffsetError(loaded.offset, offset);

    let position = offset;
    let buffered: Buffer[] = [];
    let bufferedBytes = 0;
    // One piece is written while the next one is read; pieces are committed in order.
    let writing: Promise<void> = Promise.resolve();
    const writePiece = (data: Buffer) => {
      const start = position;
      position += data.length;
      const previous = writing;
      writing = previous.then(() => this.putPiece(id, start, data));
      writing.catch(() => {}); // awaited below; this only keeps it from being "unhandled" meanwhile
    };
    const takeBuffered = (): Buffer => {
      const data = buffered.length === 1 ? buffered[0]! : Buffer.concat(buffered);
      buffered = [];
      bufferedBytes = 0;
      return data;
    };

    try {
      for await (const chunk of body) {
        buffered.push(chunk as Buffer);
        bufferedBytes += (chunk as Buffer).length;
        while (bufferedBytes >= PIECE_SIZE) {
          await writing; // at most one piece in flight while the next is read (bounded memory)
          const data = takeBuffered();
          writePiece(data.subarray(0, PIECE_SIZE));
          if (data.length > PIECE_SIZE) {
            buffered = [data.subarray(PIECE_SIZE)];
            bufferedBytes = data.length - PIECE_SIZE;
          }
        }
      }
    } catch (err) {
      // The body failed (connection cut): keep what did arrive, so the client can resume after it
      // (unless storing failed, which is then the error).
      const stored = await writing.then(
        () => true,
        () => false,
      );
      if (stored && bufferedBytes > 0) {
        writePiece(takeBuffered());
        await writing.catch(() => {});
      }
      throw err;
    }
    if (bufferedBytes > 0) writePiece(takeBuffered());
    await writing;
    return { id, offset: position, started: loaded.started };
  }

  private async putPiece(id: string, start: number, data: Buffer): Promise<void> {
    try {
      await this.s.client.send(
        new PutObjectCommand({
          Bucket: this.s.bucket,
          Key: this.pieceKey(id, start),
          Body: data,
          IfNoneMatch: "*",
        }),
      );
    } catch (err) {
      if (s3Status(err) === 412 || s3Status(err) === 409) {
        // Another replica stored a piece at this offset first.
        const now = await this.state(id, false);
        throw new UploadOffsetError(now?.offset ?? start, start);
      }
      throw err;
    }
  }

  async complete(id: string, hex: string): Promise<{ size: number }> {
    const loaded = await this.load(id);
    if (!loaded) throw new UploadNotFoundError(id);
    const blobKey = this.s.key(`blobs/sha256/${hex}`);
    const size = loaded.offset;
    const exists = await this.s.head(blobKey);
    try {
      if (exists || size <= PIECE_SIZE) {
        // Small (or already stored): read through the hash, then one PutObject if needed.
        const hash = createHash("sha256");
        const parts: Buffer[] = [];
        for (const piece of loaded.pieces) {
          for await (const chunk of await this.readPiece(piece)) {
            hash.update(chunk as Buffer);
            if (!exists) parts.push(chunk as Buffer);
          }
        }
        checkDigest(hash.digest("hex"), hex);
        if (!exists) {
          await this.s.client.send(
            new PutObjectCommand({ Bucket: this.s.bucket, Key: blobKey, Body: Buffer.concat(parts) }),
          );
        }
      } else {
        await this.compose(loaded.pieces, blobKey, hex);
      }
    } catch (err) {
      if (err instanceof DigestMismatchError) await this.abort(id);
      throw err;
    }
    await this.abort(id);
    return { size };
  }

  /** Builds the blob as a multipart upload from the pieces; completes it only on a digest match. */
  private async compose(pieces: Piece[], blobKey: string, hex: string): Promise<void> {
    const { client, bucket } = this.s;
    const { UploadId } = await client.send(
      new CreateMultipartUploadCommand({
        Bucket: bucket,
        Key: blobKey,
        ContentType: "application/octet-stream",
      }),
    );
    const parts: CompletedPart[] = [];
    const pool = new TaskPool(PARALLEL);
    let partNumber = 0;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    const uploadPending = async () => {
      const PartNumber = ++partNumber;
      const Body = Buffer.concat(pending);
      pending = [];
      pendingBytes = 0;
      await pool.add(async () => {
        const out = await client.send(
          new UploadPartCommand({ Bucket: bucket, Key: blobKey, UploadId, PartNumber, Body }),
        );
        parts.push({ PartNumber, ETag: out.ETag });
      });
    };
    try {
      const hash = createHash("sha256");
      for (const piece of pieces) {
        const copy = pendingBytes === 0 && piece.size >= MIN_PART;
        if (copy) {
          const PartNumber = ++partNumber;
          await pool.add(async () => {
            const out = await client.send(
              new UploadPartCopyCommand({
                Bucket: bucket,
                Key: blobKey,
                UploadId,
                PartNumber,
                CopySource: `${bucket}/${piece.key.split("/").map(encodeURIComponent).join("/")}`,
              }),
            );
            parts.push({ PartNumber, ETag: out.CopyPartResult?.ETag });
          });
        }
        for await (const chunk of await this.readPiece(piece)) {
          hash.update(chunk as Buffer);
          if (!copy) {
            pending.push(chunk as Buffer);
            pendingBytes += (chunk as Buffer).length;
          }
        }
        if (pendingBytes >= MIN_PART) await uploadPending();
      }
      if (pendingBytes > 0) await uploadPending();
      await pool.wait();
      checkDigest(hash.digest("hex"), hex);
      parts.sort((a, b) => a.PartNumber! - b.PartNumber!);
      await client.send(
        new CompleteMultipartUploadCommand({
          Bucket: bucket,
          Key: blobKey,
          UploadId,
          MultipartUpload: { Parts: parts },
        }),
      );
    } catch (err) {
      await pool.wait().catch(() => {});
      await client
        .send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: blobKey, UploadId }))
        .catch(() => {});
      throw err;
    }
  }

  private async readPiece(piece: Piece): Promise<Readable> {
    const out = await this.s.client.send(new GetObjectCommand({ Bucket: this.s.bucket, Key: piece.key }));
    return out.Body as Readable;
  }

  async abort(id: string): Promise<void> {
    if (!UPLOAD_ID.test(id)) return;
    const keys: string[] = [];
    for await (const o of listKeys(this.s.client, this.s.bucket, this.dir(id))) {
      if ("Key" in o && o.Key) keys.push(o.Key);
    }
    // Pieces first, the info marker last: a half-done abort still looks like an upload to GC.
    keys.sort((a, b) => Number(a.endsWith("/info")) - Number(b.endsWith("/info")));
    try {
      await deleteKeys(this.s.client, this.s.bucket, keys);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  async *list(): AsyncIterable<UploadState> {
    const base = this.s.key("uploads/");
    for await (const o of listKeys(this.s.client, this.s.bucket, base, "/")) {
      if (!("CommonPrefix" in o)) continue;
      const id = o.CommonPrefix.slice(base.length, -1);
      const state = await this.state(id, false);
      if (state) yield state;
    }
  }
}

function checkDigest(actual: string, expected: string): void {
  if (actual !== expected) throw new DigestMismatchError(expected, actual);
}
