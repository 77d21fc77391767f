import {
  DeleteObjectsCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  type S3Client,
} from "@aws-sdk/client-s3";

/** The HTTP status of an SDK error, or undefined for network-level failures. */
export function s3Status(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

/** A missing key or upload, not a missing bucket (which is an outage, not an answer). */
export function isNotFound(err: unknown): boolean {
  const name = (err as { name?: string })?.name;
  if (name === "NoSuchBucket") return false;
  return s3Status(err) === 404 || name === "NoSuchKey" || name === "NotFound" || name === "NoSuchUpload";
}

/** Every object under `prefix` (full keys), page by page, in key order. */
export async function* listKeys(
  client: S3Client,
  bucket: string,
  prefix: string,
  delimiter?: string,
): AsyncGenerator<NonNullable<ListObjectsV2CommandOutput["Contents"]>[number] | { CommonPrefix: string }> {
  let token: string | undefined;
  do {
    const page = await client.send(
      new ListObjectsV2Command({
        Bucket: bucket,
        Prefix: prefix,
        ContinuationToken: token,
        ...(delimiter ? { Delimiter: delimiter } : {}),
      }),
    );
    for (const common of page.CommonPrefixes ?? []) if (common.Prefix) yield { CommonPrefix: common.Prefix };
    for (const object of page.Contents ?? []) yield object;
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
}

/** Deletes keys 1000 at a time (the S3 limit per request); missing keys are fine. */
export async function deleteKeys(client: S3Client, bucket: string, keys: string[]): Promise<void> {
  for (let i = 0; i < keys.length; i += 1000) {
    const batch = keys.slice(i, i + 1000);
    const out = await client.send(
      new DeleteObjectsCommand({
        Bucket: bucket,
        Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
      }),
    );
    const failed = (out.Errors ?? []).filter((e) => e.Code !== "NoSuchKey");
    if (failed.length > 0) {
      throw new Error(
        `S3 delete of ${failed[0]!.Key} failed: ${failed[0]!.Code} ${failed[0]!.Message ?? ""}`,
      );
    }
  }
}

/** Runs at most `limit` tasks at once; `wait()` resolves when all are done and throws the first failure. */
export class TaskPool {
  private running = new Set<Promise<void>>();
  private failure: unknown;
  constructor(private readonly limit: number) {}

  /** Waits for a free slot (rethrowing an earlier failure), then starts `task`. */
  async add(task: () => Promise<void>): Promise<void> {
    while (this.running.size >= this.limit) await Promise.race(this.running);
    this.throwIfFailed();
    const p: Promise<void> = task()
      .catch((err: unknown) => {
        this.failure ??= err;
      })
      .finally(() => this.running.delete(p));
    this.running.add(p);
  }

  async wait(): Promise<void> {
    await Promise.all(this.running);
    this.throwIfFailed();
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }
}
