import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import { createS3Client, describeS3Failure } from "./s3-client.js";
import type { S3Options } from "./s3-config.js";
import { openSocketGet } from "./s3-socket-get.js";
import { S3Uploads } from "./s3-uploads.js";
import { isNotFound, listKeys, s3Status } from "./s3-util.js";
import {
  type BlobInfo,
  type ByteRange,
  DigestMismatchError,
  type ObjectInfo,
  type PartialWrite,
  type Storage,
  type UploadState,
} from "./storage.js";

const HEX64 = /^[0-9a-f]{64}$/;
/** Multipart part size for blob uploads, and how many parts are in flight at once. */
export const PART_SIZE = 8 * 1024 * 1024;
export const PART_QUEUE = 4;

/**
 * The S3 backend (AWS S3, Ceph RGW, MinIO) over @aws-sdk/client-s3; same key layout as the
 * local directory, under an optional key prefix.
 *
 * - Blobs are uploaded straight to blobs/sha256/<hex> as a multipart upload (lib-storage) whose
 *   body runs through a sha256; the last read checks the digest and fails the stream on a
 *   mismatch, so the multipart upload is aborted instead of completed. An incomplete multipart
 *   upload is invisible, and a completed one has the verified bytes: no wrong object is ever
 *   visible under a blob key, there is no copy or rename, and concurrent writers of one digest
 *   can only complete identical bytes. A crashed writer leaves an incomplete multipart upload,
 *   which GC aborts (listPartialWrites / abortPartialWrite).
 * - Manifests are created with PutObject If-None-Match: * (412 = someone else won).
 * - Resumable uploads keep their state in the bucket (see s3-uploads.ts).
 */
export class S3Storage implements Storage {
  readonly kind = "s3";
  readonly client: S3Client;
  readonly bucket: string;
  readonly prefix: string;
  /** Blob downloads over a bare socket (s3-socket-get.ts); only for http:// endpoints. */
  readonly socketDownloads: boolean;
  private readonly uploads: S3Uploads;

  constructor(
    readonly options: S3Options,
    client?: S3Client,
    tuning: { socketDownloads?: boolean } = {},
  ) {
    this.client = client ?? createS3Client(options);
    this.socketDownloads = (tuning.socketDownloads ?? true) && /^http:/i.test(options.endpoint ?? "");
    this.bucket = options.bucket;
    this.prefix = options.prefix;
    this.uploads = new S3Uploads(this);
  }

  /** The full key of a storage-relative key. */
  key(relative: string): string {
    return this.prefix + relative;
  }

  private blobKey(hex: string): string {
    if (!HEX64.test(hex)) throw new Error(`not a sha256 hex digest: ${hex}`);
    return this.key(`blobs/sha256/${hex}`);
  }

  /** Readiness: one listing request that needs the endpoint, valid credentials and the bucket. */
  async check(): Promise<void> {
    try {
      await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix, MaxKeys: 1 }),
      );
    } catch (err) {
      throw new Error(describeS3Failure(err, this.options));
    }
  }

  // ---- blobs

  async statBlob(hex: string): Promise<BlobInfo | null> {
    const info = await this.head(this.blobKey(hex));
    return info ? { size: info.size, modified: info.modified } : null;
  }

  async readBlob(hex: string, range?: ByteRange): Promise<Readable | null> {
    const input = {
      Bucket: this.bucket,
      Key: this.blobKey(hex),
      ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}),
    };
    if (this.socketDownloads) {
      const url = await getSignedUrl(this.client, new GetObjectCommand(input), { expiresIn: 300 });
      const body = await openSocketGet(new URL(url), range);
      if (body) return body;
      // An error status, an odd response or no connection: the SDK retries and reports it.
    }
    try {
      const out = await this.client.send(new GetObjectCommand(input));
      return out.Body as Readable;
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async putBlob(hex: string, body: Readable): Promise<{ size: number; created: boolean }> {
    const key = this.blobKey(hex);
    const counted = { size: 0 };
    if (await this.head(key)) {
      // Already there: read the body anyway, so a wrong body still gets its DigestMismatchError.
      for await (const _ of verifySha256(body, hex, counted)) {
        // drain
      }
      return { size: counted.size, created: false };
    }
    await this.uploadVerified(key, Readable.from(verifySha256(body, hex, counted), { objectMode: false }));
    return { size: counted.size, created: true };
  }

  /**
   * Streams `body` into `key` with lib-storage (parts in parallel); the object appears only if
   * the body ends without error, which verifySha256 guarantees happens only on a digest match.
   */
  async uploadVerified(key: string, body: Readable): Promise<void> {
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: key, Body: body, ContentType: "application/octet-stream" },
      partSize: PART_SIZE,
      queueSize: PART_QUEUE,
      leavePartsOnError: false,
    });
    await upload.done();
  }

  async deleteBlob(hex: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.blobKey(hex) }));
  }

  async *listBlobs(): AsyncIterable<{ hex: string } & BlobInfo> {
    const base = this.key("blobs/sha256/");
    for await (const o of listKeys(this.client, this.bucket, base)) {
      if (!("Key" in o) || !o.Key) continue;
      const hex = o.Key.slice(base.length);
      if (HEX64.test(hex)) yield { hex, size: o.Size ?? 0, modified: o.LastModified ?? new Date(0) };
    }
  }

  /** With `redirect` on: a presigned GET URL of the blob (Range works on it too); else null (stream). */
  async blobRedirectUrl(hex: string): Promise<string | null> {
    return this.options.redirect ? this.presignBlob(hex) : null;
  }

  /** A time-limited URL for GET of the blob straight from the bucket. */
  async presignBlob(hex: string, seconds = this.options.presignSeconds ?? 900): Promise<string> {
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key: this.blobKey(hex) }), {
      expiresIn: seconds,
    });
  }

  // ---- small objects

  async getObject(key: string): Promise<Buffer | null> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key(key) }));
      return Buffer.from(await out.Body!.transformToByteArray());
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async statObject(key: string): Promise<ObjectInfo | null> {
    const info = await this.head(this.key(key));
    return info ? { key, size: info.size, modified: info.modified } : null;
  }

  async putObjectIfAbsent(key: string, data: Buffer): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.client.send(
          new PutObjectCommand({ Bucket: this.bucket, Key: this.key(key), Body: data, IfNoneMatch: "*" }),
        );
        return true;
      } catch (err) {
        if (s3Status(err) === 412) return false;
        // AWS answers 409 while another conditional write of the key is in flight: ask again.
        if (s3Status(err) === 409 && attempt < 20) {
          await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 50));
          continue;
        }
        throw err;
      }
    }
  }

  async putObject(key: string, data: Buffer): Promise<void> {
    await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.key(key), Body: data }));
  }

  async deleteObject(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(key) }));
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    for await (const o of listKeys(this.client, this.bucket, this.key(prefix))) {
      if (!("Key" in o) || !o.Key) continue;
      yield {
        key: o.Key.slice(this.prefix.length),
        size: o.Size ?? 0,
        modified: o.LastModified ?? new Date(0),
      };
    }
  }

  // ---- resumable uploads (s3-uploads.ts)

  createUpload(owner?: string): Promise<UploadState> {
    return this.uploads.create(owner);
  }
  uploadState(id: string): Promise<UploadState | null> {
    return this.uploads.state(id);
  }
  appendUpload(id: string, offset: number, body: Readable): Promise<UploadState> {
    return this.uploads.append(id, offset, body);
  }
  completeUpload(id: string, hex: string): Promise<{ size: number }> {
    return this.uploads.complete(id, hex);
  }
  abortUpload(id: string): Promise<void> {
    return this.uploads.abort(id);
  }
  listUploads(): AsyncIterable<UploadState> {
    return this.uploads.list();
  }

  // ---- partial writes: multipart uploads that were never completed (a writer died)

  async *listPartialWrites(): AsyncIterable<PartialWrite> {
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    do {
      const page = await this.client.send(
        new ListMultipartUploadsCommand({
          Bucket: this.bucket,
          Prefix: this.prefix,
          KeyMarker: keyMarker,
          UploadIdMarker: uploadIdMarker,
        }),
      );
      for (const u of page.Uploads ?? []) {
        if (!u.Key || !u.UploadId) continue;
        yield { id: `${u.Key.slice(this.prefix.length)}#${u.UploadId}`, started: u.Initiated ?? new Date(0) };
      }
      keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
      uploadIdMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
    } while (keyMarker);
  }

  async abortPartialWrite(id: string): Promise<void> {
    const at = id.lastIndexOf("#");
    if (at <= 0) return;
    try {
      await this.client.send(
        new AbortMultipartUploadCommand({
          Bucket: this.bucket,
          Key: this.key(id.slice(0, at)),
          UploadId: id.slice(at + 1),
        }),
      );
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  // ---- helpers

  async head(fullKey: string): Promise<{ size: number; modified: Date } | null> {
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: fullKey }));
      return { size: out.ContentLength ?? 0, modified: out.LastModified ?? new Date(0) };
    } catch (err) {
      if (!isNotFound(err)) throw err;
      // A HEAD 404 has no body: "no such key" and "no such bucket" look alike. Make sure it is the
      // key (one listing, at most every 10 s), so a missing bucket is an error, never "absent".
      if (Date.now() - this.bucketSeen > 10_000) {
        await this.check();
        this.bucketSeen = Date.now();
      }
      return null;
    }
  }
  private bucketSeen = 0;
}

/**
 * Passes `body` through, hashing; throws DigestMismatchError instead of ending when the bytes do
 * not hash to `hex`. Whoever consumes it sees a clean end only for verified bytes.
 */
export async function* verifySha256(
  body: AsyncIterable<Buffer | Uint8Array>,
  hex: string,
  counted: { size: number },
): AsyncGenerator<Buffer> {
  const hash = createHash("sha256");
  for await (const chunk of body) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
    hash.update(buf);
    counted.size += buf.length;
    yield buf;
  }
  const actual = hash.digest("hex");
  if (actual !== hex) throw new DigestMismatchError(hex, actual);
}

export { createS3Client, describeS3Failure };
