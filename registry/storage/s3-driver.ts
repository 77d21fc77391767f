import { PassThrough, type Readable, Writable } from "node:stream";
import {
  AbortMultipartUploadCommand,
  CopyObjectCommand,
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
import {
  assertKey,
  type ByteRange,
  type ObjectInfo,
  type ObjectWriter,
  type StorageDriver,
  type WriteOptions,
} from "./driver.js";
import { createS3Client, describeS3Failure } from "./s3-client.js";
import { concatObjects } from "./s3-concat.js";
import type { S3Options } from "./s3-config.js";
import { openSocketGet } from "./s3-socket-get.js";
import { isNotFound, listKeys, s3Status } from "./s3-util.js";

/** Multipart part size for streamed writes, and how many parts are in flight at once. */
export const PART_SIZE = 8 * 1024 * 1024;
export const PART_QUEUE = 4;
/**
 * S3 creates an object only-if-absent in one PutObject (If-None-Match: *), so such writes are
 * buffered in memory: the store keeps them this small (upload pieces).
 */
export const ATOMIC_WRITE_LIMIT = 8 * 1024 * 1024;

/**
 * The S3 driver (AWS S3, Ceph RGW, MinIO) over @aws-sdk/client-s3, objects under an optional key
 * prefix of one bucket.
 *
 * - Streamed writes are multipart uploads (lib-storage): an incomplete multipart upload is
 *   invisible, so an object appears only once its stream ended; a destroyed stream aborts it.
 *   A crashed writer leaves an incomplete multipart upload, which sweepAbandoned aborts.
 * - Create-if-absent is PutObject with If-None-Match: * (412: someone else won).
 * - Downloads from a plain-HTTP endpoint go over a bare socket (s3-socket-get.ts), others and
 *   anything unusual through the SDK; with `redirect` on, downloadUrl gives a presigned URL.
 */
export class S3Driver implements StorageDriver {
  readonly kind = "s3";
  readonly atomicWriteLimit = ATOMIC_WRITE_LIMIT;
  readonly client: S3Client;
  readonly bucket: string;
  readonly prefix: string;
  /** Downloads over a bare socket; only for http:// endpoints. */
  readonly socketDownloads: boolean;

  constructor(
    readonly options: S3Options,
    client?: S3Client,
    tuning: { socketDownloads?: boolean } = {},
  ) {
    this.client = client ?? createS3Client(options);
    this.socketDownloads = (tuning.socketDownloads ?? true) && /^http:/i.test(options.endpoint ?? "");
    this.bucket = options.bucket;
    this.prefix = options.prefix;
  }

  /** The bucket key of a storage key. */
  fullKey(key: string): string {
    return this.prefix + assertKey(key);
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

  async get(key: string): Promise<Buffer | null> {
    try {
      const out = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: this.fullKey(key) }),
      );
      return Buffer.from(await out.Body!.transformToByteArray());
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async stat(key: string): Promise<ObjectInfo | null> {
    const info = await this.head(this.fullKey(key));
    return info ? { key, size: info.size, modified: info.modified } : null;
  }

  async put(key: string, data: Buffer): Promise<void> {
    await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.fullKey(key), Body: data }));
  }

  async putIfAbsent(key: string, data: Buffer): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.client.send(
          new PutObjectCommand({ Bucket: this.bucket, Key: this.fullKey(key), Body: data, IfNoneMatch: "*" }),
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

  async delete(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.fullKey(key) }));
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    for await (const o of listKeys(this.client, this.bucket, this.prefix + prefix)) {
      if (!("Key" in o) || !o.Key) continue;
      yield {
        key: o.Key.slice(this.prefix.length),
        size: o.Size ?? 0,
        modified: o.LastModified ?? new Date(0),
      };
    }
  }

  async read(key: string, range?: ByteRange): Promise<Readable | null> {
    const input = {
      Bucket: this.bucket,
      Key: this.fullKey(key),
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

  async write(key: string, options: WriteOptions = {}): Promise<ObjectWriter> {
    const fullKey = this.fullKey(key);
    if (options.ifAbsent) return this.bufferedWrite(key);
    const body = new PassThrough({ highWaterMark: 1 << 20 });
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: fullKey, Body: body, ContentType: "application/octet-stream" },
      partSize: PART_SIZE,
      queueSize: PART_QUEUE,
      leavePartsOnError: false,
    });
    // A destroyed body fails the upload's read of it: lib-storage aborts the multipart upload.
    const done = upload.done().then(() => true);
    done.catch(() => {});
    body.on("error", () => {}); // reported through `done`
    return { stream: body, done };
  }

  /** Create-if-absent writes: collected (at most atomicWriteLimit bytes), then one conditional PutObject. */
  private bufferedWrite(key: string): ObjectWriter {
    const chunks: Buffer[] = [];
    let size = 0;
    let settle: { resolve: (v: boolean) => void; reject: (err: unknown) => void } | undefined;
    const done = new Promise<boolean>((resolve, reject) => {
      settle = { resolve, reject };
    });
    done.catch(() => {});
    const stream = new Writable({
      write: (chunk: Buffer, _encoding, callback) => {
        size += chunk.length;
        if (size > ATOMIC_WRITE_LIMIT) {
          callback(new Error(`S3 create-if-absent write of ${key} exceeds ${ATOMIC_WRITE_LIMIT} bytes`));
          return;
        }
        chunks.push(chunk);
        callback();
      },
      final: (callback) => {
        this.putIfAbsent(key, Buffer.concat(chunks)).then(
          (created) => {
            settle!.resolve(created);
            callback();
          },
          (err: Error) => callback(err),
        );
      },
      destroy: (err, callback) => {
        settle!.reject(err ?? new Error(`write of ${key} was abandoned`));
        callback(err);
      },
    });
    stream.on("error", () => {}); // reported through `done`
    return { stream, done };
  }

  async concat(target: string, sources: ObjectInfo[]): Promise<void> {
    const fullTarget = this.fullKey(target);
    const full = sources.map((s) => ({ ...s, key: this.fullKey(s.key) }));
    if (full.length === 1 && full[0]!.size <= 5 * 1024 ** 3) {
      await this.client.send(
        new CopyObjectCommand({
          Bucket: this.bucket,
          Key: fullTarget,
          CopySource: this.copySource(full[0]!.key),
        }),
      );
      return;
    }
    await concatObjects(this, fullTarget, full);
  }

  /** `bucket/key` URL-encoded per segment, as CopySource wants it. */
  copySource(fullKey: string): string {
    return `${this.bucket}/${fullKey.split("/").map(encodeURIComponent).join("/")}`;
  }

  async downloadUrl(key: string): Promise<string | null> {
    if (!this.options.redirect) return null;
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key: this.fullKey(key) }), {
      expiresIn: this.options.presignSeconds ?? 900,
    });
  }

  /** Incomplete multipart uploads (writers that died) started before `olderThan`: invisible, but billed. */
  async sweepAbandoned(olderThan: Date): Promise<number> {
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    let aborted = 0;
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
        if (!u.Key || !u.UploadId || (u.Initiated ?? new Date(0)) >= olderThan) continue;
        try {
          await this.client.send(
            new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: u.Key, UploadId: u.UploadId }),
          );
          aborted++;
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
      }
      keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
      uploadIdMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
    } while (keyMarker);
    return aborted;
  }

  private bucketSeen = 0;

  private async head(fullKey: string): Promise<{ size: number; modified: Date } | null> {
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
}
