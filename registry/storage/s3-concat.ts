import type { Readable } from "node:stream";
import {
  AbortMultipartUploadCommand,
  type CompletedPart,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  UploadPartCommand,
  UploadPartCopyCommand,
} from "@aws-sdk/client-s3";
import type { ObjectInfo } from "./driver.js";
import type { S3Driver } from "./s3-driver.js";
import { TaskPool } from "./s3-util.js";

/** S3's smallest part (every part but the last). */
const MIN_PART = 5 * 1024 * 1024;
const PARALLEL = 4;

/**
 * Builds `target` as one multipart upload from existing objects (full bucket keys): an object
 * of 5 MiB or more becomes a part by server-side copy (UploadPartCopy, no byte through here),
 * runs of smaller ones are read and concatenated into parts of at least 5 MiB, as S3 requires
 * of every part but the last. The upload is completed only when every part is in; on any
 * failure it is aborted, and nothing is visible at `target`.
 */
export async function concatObjects(driver: S3Driver, target: string, sources: ObjectInfo[]): Promise<void> {
  const { client, bucket } = driver;
  const { UploadId } = await client.send(
    new CreateMultipartUploadCommand({
      Bucket: bucket,
      Key: target,
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
        new UploadPartCommand({ Bucket: bucket, Key: target, UploadId, PartNumber, Body }),
      );
      parts.push({ PartNumber, ETag: out.ETag });
    });
  };
  try {
    for (const source of sources) {
      if (pendingBytes === 0 && source.size >= MIN_PART) {
        const PartNumber = ++partNumber;
        await pool.add(async () => {
          const out = await client.send(
            new UploadPartCopyCommand({
              Bucket: bucket,
              Key: target,
              UploadId,
              PartNumber,
              CopySource: driver.copySource(source.key),
            }),
          );
          parts.push({ PartNumber, ETag: out.CopyPartResult?.ETag });
        });
        continue;
      }
      const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: source.key }));
      for await (const chunk of out.Body as Readable) {
        pending.push(chunk as Buffer);
        pendingBytes += (chunk as Buffer).length;
      }
      if (pendingBytes >= MIN_PART) await uploadPending();
    }
    if (pendingBytes > 0 || partNumber === 0) await uploadPending();
    await pool.wait();
    parts.sort((a, b) => a.PartNumber! - b.PartNumber!);
    await client.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: target,
        UploadId,
        MultipartUpload: { Parts: parts },
      }),
    );
  } catch (err) {
    await pool.wait().catch(() => {});
    await client
      .send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: target, UploadId }))
      .catch(() => {});
    throw err;
  }
}
