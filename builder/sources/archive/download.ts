import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { errorMessage, UserError } from "../../../common/errors.js";
import { createProgress, formatBytes } from "../../../common/progress.js";

/**
 * Downloads for the archive source. Small documents (indexes, checksum files, keys,
 * signatures) are read into memory with a size cap; artifacts go into the download cache:
 * `<cache>/archive/<url hash>/<file name>`, written under `<name>.partial` (resumed with
 * `Range` + `If-Range` when a build is interrupted) and renamed when complete. A cached
 * artifact is reused only when it still matches the digest upstream lists now.
 */
export interface DownloadOptions {
  cacheDir: string;
  /** Says whether a cached file still matches what upstream lists now (checksums or a pin). */
  stillValid?: (path: string) => Promise<boolean>;
  signal?: AbortSignal;
  log?: (line: string) => void;
  /** Progress bar on a terminal (off in tests and --json). */
  progress?: boolean;
  /** Attempts, each resuming where the last one stopped (default 3). */
  attempts?: number;
}

export interface Downloaded {
  path: string;
  size: number;
  /** Bytes actually transferred by this build (0 when the cache had it). */
  fetched: number;
  fromCache: boolean;
  resumed: boolean;
}

const SMALL_LIMIT = 4 << 20;

function describeStatus(url: string, response: Response): UserError {
  return new UserError(`download ${url}: HTTP ${response.status} ${response.statusText}`.trim());
}

async function request(url: string, init: RequestInit): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(url, { ...init, redirect: "follow" });
  } catch (err) {
    if ((err as Error).name === "AbortError") throw new UserError("interrupted", 130);
    const cause = (err as { cause?: Error }).cause;
    throw new UserError(`download ${url}: ${cause ? errorMessage(cause) : errorMessage(err)}`);
  }
  // `trust: https` must not be defeated by a redirect to plain http.
  if (url.startsWith("https://") && response.url.startsWith("http://")) {
    await response.body?.cancel();
    throw new UserError(`download ${url}: redirected to plain http (${response.url}): refusing it`);
  }
  return response;
}

/** Fetches a small document (index, checksum file, key, signature) into memory. */
export async function fetchSmall(url: string, signal?: AbortSignal): Promise<Buffer> {
  const response = await request(url, signal ? { signal } : {});
  if (!response.ok) throw describeStatus(url, response);
  const length = Number(response.headers.get("content-length") ?? 0);
  if (length > SMALL_LIMIT)
    throw new UserError(`download ${url}: ${formatBytes(length)} is too large for this file`);
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      total += chunk.length;
      if (total > SMALL_LIMIT)
        throw new UserError(`download ${url}: larger than ${formatBytes(SMALL_LIMIT)}`);
      chunks.push(Buffer.from(chunk));
    }
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`download ${url}: interrupted (${errorMessage(err)})`);
  }
  if (length && total !== length)
    throw new UserError(`download ${url}: got ${total} of ${length} bytes (truncated)`);
  return Buffer.concat(chunks);
}

export function cachePathFor(cacheDir: string, url: string): string {
  const key = createHash("sha256").update(url).digest("hex").slice(0, 16);
  const name = basename(new URL(url).pathname) || "artifact";
  return join(cacheDir, "archive", key, name);
}

interface PartialMeta {
  url: string;
  validator?: string;
}

export async function downloadToCache(url: string, options: DownloadOptions): Promise<Downloaded> {
  const path = cachePathFor(options.cacheDir, url);
  await mkdir(join(path, ".."), { recursive: true });
  const cached = await stat(path).catch(() => null);
  if (cached && options.stillValid) {
    if (await options.stillValid(path)) {
      options.log?.(`using cached ${basename(path)} (${formatBytes(cached.size)}, checksum matches)`);
      return { path, size: cached.size, fetched: 0, fromCache: true, resumed: false };
    }
    options.log?.(`cached ${basename(path)} no longer matches upstream's checksum: downloading again`);
  }
  const partial = `${path}.partial`;
  const metaPath = `${partial}.json`;
  const attempts = options.attempts ?? 3;
  let fetched = 0;
  let resumed = false;
  let lastError: unknown;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      const result = await downloadOnce(url, partial, metaPath, options);
      fetched += result.fetched;
      resumed ||= result.resumed;
      await rename(partial, path);
      await rm(metaPath, { force: true });
      const size = (await stat(path)).size;
      return { path, size, fetched, fromCache: false, resumed };
    } catch (err) {
      lastError = err;
      if (err instanceof UserError && (err.exitCode === 130 || !/interrupted/.test(err.message))) throw err;
      if (attempt < attempts)
        options.log?.(`${errorMessage(err)}; resuming (attempt ${attempt + 1} of ${attempts})`);
    }
  }
  throw lastError instanceof UserError
    ? new UserError(`${lastError.message}; the partial file is kept and the next build resumes it`)
    : lastError;
}

async function downloadOnce(
  url: string,
  partial: string,
  metaPath: string,
  options: DownloadOptions,
): Promise<{ fetched: number; resumed: boolean }> {
  const have = (await stat(partial).catch(() => null))?.size ?? 0;
  const meta: PartialMeta | null = have
    ? await readFile(metaPath, "utf8")
        .then((t) => JSON.parse(t) as PartialMeta)
        .catch(() => null)
    : null;
  const canResume = have > 0 && meta?.url === url && Boolean(meta.validator);
  const headers: Record<string, string> = {};
  if (canResume) {
    headers.range = `bytes=${have}-`;
    headers["if-range"] = meta!.validator!;
  }
  const response = await request(url, { headers, ...(options.signal ? { signal: options.signal } : {}) });
  if (!response.ok) throw describeStatus(url, response);
  const resumed = response.status === 206;
  const offset = resumed ? have : 0;
  const length = Number(response.headers.get("content-length") ?? Number.NaN);
  const total = Number.isFinite(length) ? offset + length : undefined;
  const validator = response.headers.get("etag") ?? response.headers.get("last-modified") ?? undefined;
  await writeFile(metaPath, JSON.stringify({ url, validator } satisfies PartialMeta));
  if (resumed) options.log?.(`resuming ${basename(url)} at ${formatBytes(offset)}`);

  const progress = createProgress(`download ${basename(new URL(url).pathname)}`, {
    ...(total ? { total } : {}),
    enabled: options.progress ?? false,
  });
  let received = 0;
  const body = Readable.fromWeb(response.body as import("node:stream/web").ReadableStream<Uint8Array>);
  body.on("data", (chunk: Buffer) => {
    received += chunk.length;
    progress.update(offset + received);
  });
  try {
    await pipeline(body, createWriteStream(partial, { flags: resumed ? "a" : "w" }));
  } catch (err) {
    if (options.signal?.aborted) throw new UserError("interrupted", 130);
    throw new UserError(
      `download ${url}: interrupted after ${formatBytes(offset + received)}${total ? ` of ${formatBytes(total)}` : ""} (${errorMessage(err)})`,
    );
  }
  if (total !== undefined && offset + received !== total) {
    throw new UserError(
      `download ${url}: interrupted after ${formatBytes(offset + received)} of ${formatBytes(total)} (truncated)`,
    );
  }
  progress.finish();
  return { fetched: received, resumed };
}
