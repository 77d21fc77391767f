import { createHash, randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { type FileHandle, link, mkdir, open, readdir, readFile, rename, rm, unlink } from "node:fs/promises";
import { dirname, join, sep } from "node:path";
import { type Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { LocalBlobStream } from "./local-blob-stream.js";
import { fsyncDir, isNotDir, isNotFound, ListedFile, readdirOrEmpty, statOrNull } from "./local-fs.js";
import {
  type BlobInfo,
  type ByteRange,
  DigestMismatchError,
  type ObjectInfo,
  type Storage,
  UploadNotFoundError,
  UploadOffsetError,
  type UploadState,
} from "./storage.js";

const HEX64 = /^[0-9a-f]{64}$/;
const UPLOAD_ID = /^[0-9a-f]{32}$/;
/** Temporary files for small objects live here, on the same filesystem, so rename/link are atomic. */
const TMP_DIR = "uploads/tmp";
/** Object temp files older than this are leftovers of a crashed process (swept by listUploads). */
const TMP_MAX_AGE_MS = 60 * 60 * 1000;
const CHUNK = 1 << 20;

/**
 * The local-directory backend. Layout as in storage.ts; every write is crash-safe:
 * - blobs: data goes to uploads/<id>/data, is hashed while written, fsynced, and renamed to
 *   blobs/sha256/<hex> only when the digest matches (a blob path never holds other bytes);
 * - manifests: written to a temp file, then link(2)ed to the final name, which fails with
 *   EEXIST when another process (or replica on the same directory) won: exactly one winner;
 * - tags and other mutable objects: temp file + rename;
 * - resumable uploads: uploads/<id>/data grows chunk by chunk; its size is the offset, so an
 *   upload survives a restart (a chunk cut short keeps its received prefix); uploads/<id>/owner
 *   says who opened it.
 */
export class LocalStorage implements Storage {
  readonly kind = "local";
  constructor(readonly root: string) {}

  async check(): Promise<void> {
    await mkdir(join(this.root, TMP_DIR), { recursive: true });
    const probe = join(this.root, TMP_DIR, `.ready-${randomBytes(6).toString("hex")}`);
    await this.writeDurable(probe, Buffer.from("ok"));
    await unlink(probe);
  }

  // ---- blobs

  private blobPath(hex: string): string {
    if (!HEX64.test(hex)) throw new Error(`not a sha256 hex digest: ${hex}`);
    return join(this.root, "blobs", "sha256", hex);
  }

  async statBlob(hex: string): Promise<BlobInfo | null> {
    const st = await statOrNull(this.blobPath(hex));
    return st ? { size: st.size, modified: st.mtime } : null;
  }

  async readBlob(hex: string, range?: ByteRange): Promise<Readable | null> {
    let handle: FileHandle;
    try {
      handle = await open(this.blobPath(hex), "r");
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
    // Opening first means a concurrent GC delete cannot cut a stream that has started.
    try {
      const end = range ? range.end : (await handle.stat()).size - 1;
      return new LocalBlobStream(handle, range?.start ?? 0, end);
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  async putBlob(hex: string, body: Readable): Promise<{ size: number; created: boolean }> {
    this.blobPath(hex);
    // The same path as a resumable upload, under an id nobody else knows, hashed while written:
    // no second pass over the data, and a crash leaves an upload that GC expires.
    const upload = await this.createUpload();
    try {
      const hash = createHash("sha256");
      let size = 0;
      const tap = new Transform({
        highWaterMark: CHUNK,
        transform(chunk: Buffer, _enc, done) {
          hash.update(chunk);
          size += chunk.length;
          done(null, chunk);
        },
      });
      const out = createWriteStream(join(this.uploadDir(upload.id), "data"), { flags: "r+" });
      await pipeline(body, tap, out);
      const existed = (await this.statBlob(hex)) !== null;
      await this.publish(upload.id, hex, { hex: hash.digest("hex"), size });
      return { size, created: !existed };
    } finally {
      await this.abortUpload(upload.id);
    }
  }

  async deleteBlob(hex: string): Promise<void> {
    await rm(this.blobPath(hex), { force: true });
  }

  async *listBlobs(): AsyncIterable<{ hex: string } & BlobInfo> {
    const dir = join(this.root, "blobs", "sha256");
    const names = (await readdirOrEmpty(dir)).filter((n) => HEX64.test(n)).sort();
    for (const hex of names) {
      const st = await statOrNull(join(dir, hex));
      if (st) yield { hex, size: st.size, modified: st.mtime };
    }
  }

  // ---- small objects

  private objectPath(key: string): string {
    if (
      key.length === 0 ||
      key.startsWith("/") ||
      key.includes("\0") ||
      key.split("/").some((part) => part === "" || part === "." || part === ".." || part.startsWith("."))
    ) {
      throw new Error(`invalid storage key: ${JSON.stringify(key)}`);
    }
    return join(this.root, ...key.split("/"));
  }

  async getObject(key: string): Promise<Buffer | null> {
    try {
      return await readFile(this.objectPath(key));
    } catch (err) {
      if (isNotFound(err) || isNotDir(err)) return null;
      throw err;
    }
  }

  async statObject(key: string): Promise<ObjectInfo | null> {
    const st = await statOrNull(this.objectPath(key));
    return st?.isFile() ? { key, size: st.size, modified: st.mtime } : null;
  }

  async putObjectIfAbsent(key: string, data: Buffer): Promise<boolean> {
    const path = this.objectPath(key);
    const temp = await this.tempFile(data);
    try {
      await mkdir(dirname(path), { recursive: true });
      await link(temp, path);
      await fsyncDir(dirname(path));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
      throw err;
    } finally {
      await rm(temp, { force: true });
    }
  }

  async putObject(key: string, data: Buffer): Promise<void> {
    const path = this.objectPath(key);
    const temp = await this.tempFile(data);
    try {
      await mkdir(dirname(path), { recursive: true });
      await rename(temp, path);
      await fsyncDir(dirname(path));
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
  }

  async deleteObject(key: string): Promise<void> {
    await rm(this.objectPath(key), { force: true });
  }

  list(prefix: string): AsyncIterable<ObjectInfo> {
    // Walk the deepest directory the prefix names, then filter and sort by the whole key:
    // a depth-first walk would not give key order ("a.b" sorts before "a/b").
    const slash = prefix.lastIndexOf("/");
    const dirKey = slash >= 0 ? prefix.slice(0, slash) : "";
    if (dirKey.split("/").some((p) => p === ".." || p === ".")) throw new Error(`invalid prefix: ${prefix}`);
    const collect = async () => {
      const found: ObjectInfo[] = [];
      await this.walk(dirKey, prefix, found);
      return found.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    };
    // A plain iterator over the sorted array: an async generator costs several microtask hops
    // per item, which is most of the time of listing 10,000 keys.
    return {
      [Symbol.asyncIterator]() {
        let items: ObjectInfo[] | null = null;
        let i = 0;
        return {
          async next(): Promise<IteratorResult<ObjectInfo>> {
            items ??= await collect();
            return i < items.length ? { value: items[i++]!, done: false } : { value: undefined, done: true };
          },
        };
      },
    };
  }

  private async walk(dirKey: string, prefix: string, out: ObjectInfo[]): Promise<void> {
    const dir = dirKey ? join(this.root, ...dirKey.split("/")) : this.root;
    let entries: import("node:fs").Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      if (isNotFound(err) || isNotDir(err)) return;
      throw err;
    }
    for (const entry of entries) {
      if (entry.name.startsWith(".")) continue; // temp files of writers in flight
      const key = dirKey ? `${dirKey}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        // Descend only where keys below can still match the prefix.
        if (key === TMP_DIR) continue;
        if (prefix.startsWith(`${key}/`) || `${key}/`.startsWith(prefix)) await this.walk(key, prefix, out);
      } else if (entry.isFile() && key.startsWith(prefix)) {
        out.push(new ListedFile(key, `${dir}/${entry.name}`));
      }
    }
  }

  // ---- resumable uploads

  private uploadDir(id: string): string {
    if (!UPLOAD_ID.test(id)) throw new UploadNotFoundError(id);
    return join(this.root, "uploads", id);
  }

  async createUpload(owner?: string): Promise<UploadState> {
    const id = randomBytes(16).toString("hex");
    const dir = this.uploadDir(id);
    await mkdir(dir, { recursive: true });
    const started = new Date();
    await this.writeDurable(join(dir, "started"), Buffer.from(started.toISOString()));
    // Before "data": an upload exists once its data file does, and then its owner is on disk.
    if (owner) await this.writeDurable(join(dir, "owner"), Buffer.from(owner));
    await (await open(join(dir, "data"), "w")).close();
    return { id, offset: 0, started, owner: owner ?? null };
  }

  async uploadState(id: string): Promise<UploadState | null> {
    if (!UPLOAD_ID.test(id)) return null;
    const dir = this.uploadDir(id);
    const data = await statOrNull(join(dir, "data"));
    if (!data) return null;
    let started = data.birthtime.getTime() > 0 ? data.birthtime : data.ctime;
    try {
      const text = (await readFile(join(dir, "started"), "utf8")).trim();
      const parsed = new Date(text);
      if (!Number.isNaN(parsed.getTime())) started = parsed;
    } catch {
      // A crash between mkdir and writing "started": the data file's times are good enough.
    }
    const owner = await readFile(join(dir, "owner"), "utf8").catch((err) => {
      if (isNotFound(err)) return null;
      throw err;
    });
    return { id, offset: data.size, started, owner };
  }

  async appendUpload(id: string, offset: number, body: Readable): Promise<UploadState> {
    const state = await this.uploadState(id);
    if (!state) {
      body.resume();
      throw new UploadNotFoundError(id);
    }
    if (offset !== state.offset) {
      body.resume();
      throw new UploadOffsetError(state.offset, offset);
    }
    // Positional writes at the checked offset: a retried chunk racing itself writes the same
    // bytes at the same place instead of appending them twice.
    const out = createWriteStream(join(this.uploadDir(id), "data"), { flags: "r+", start: offset });
    // Whatever arrives before a cut connection stays: the client resumes from the new offset.
    await pipeline(body, out);
    const after = (await this.uploadState(id))!;
    return after;
  }

  async completeUpload(id: string, hex: string): Promise<{ size: number }> {
    // Chunks may have come through several processes (or raced each other): only the bytes on
    // disk count, so they are read and hashed once more here.
    return this.publish(id, hex, null);
  }

  /** Verifies an upload's data (or trusts `known`, hashed while this process wrote all of it) and renames it into place. */
  private async publish(
    id: string,
    hex: string,
    known: { hex: string; size: number } | null,
  ): Promise<{ size: number }> {
    const target = this.blobPath(hex);
    const dir = this.uploadDir(id);
    const dataPath = join(dir, "data");
    const handle = await open(dataPath, "r+").catch((err) => {
      if (isNotFound(err)) throw new UploadNotFoundError(id);
      throw err;
    });
    let size = 0;
    try {
      let actual: string;
      const fileSize = (await handle.stat()).size;
      if (known && known.size === fileSize) {
        size = fileSize;
        actual = known.hex;
      } else {
        const hash = createHash("sha256");
        const buffer = Buffer.allocUnsafe(CHUNK);
        for (;;) {
          const { bytesRead } = await handle.read(buffer, 0, CHUNK, size);
          if (bytesRead === 0) break;
          hash.update(buffer.subarray(0, bytesRead));
          size += bytesRead;
        }
        actual = hash.digest("hex");
      }
      if (actual !== hex) {
        await handle.close();
        await rm(dir, { recursive: true, force: true });
        throw new DigestMismatchError(hex, actual);
      }
      await handle.sync();
    } finally {
      await handle.close().catch(() => {});
    }
    await mkdir(dirname(target), { recursive: true });
    // Same bytes under the same name: replacing an existing blob is harmless and atomic.
    await rename(dataPath, target);
    await fsyncDir(dirname(target));
    await rm(dir, { recursive: true, force: true });
    return { size };
  }

  async abortUpload(id: string): Promise<void> {
    if (!UPLOAD_ID.test(id)) return;
    await rm(this.uploadDir(id), { recursive: true, force: true });
  }

  async *listUploads(): AsyncIterable<UploadState> {
    await this.sweepTemp();
    const names = (await readdirOrEmpty(join(this.root, "uploads"))).filter((n) => UPLOAD_ID.test(n)).sort();
    for (const id of names) {
      const state = await this.uploadState(id);
      if (state) yield state;
      else {
        // A directory without data: a crash inside createUpload. Report it as started long ago.
        const st = await statOrNull(join(this.root, "uploads", id));
        if (st) yield { id, offset: 0, started: st.mtime };
      }
    }
  }

  // ---- helpers

  private async tempFile(data: Buffer): Promise<string> {
    const dir = join(this.root, TMP_DIR);
    await mkdir(dir, { recursive: true });
    const path = join(dir, `${Date.now()}-${randomBytes(8).toString("hex")}`);
    await this.writeDurable(path, data);
    return path;
  }

  private async writeDurable(path: string, data: Buffer): Promise<void> {
    const handle = await open(path, "wx");
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  /** Removes object temp files a killed process left behind. */
  private async sweepTemp(): Promise<void> {
    const dir = join(this.root, TMP_DIR);
    const cutoff = Date.now() - TMP_MAX_AGE_MS;
    for (const name of await readdirOrEmpty(dir)) {
      const st = await statOrNull(join(dir, name));
      if (st && st.mtimeMs < cutoff) await rm(join(dir, name), { force: true });
    }
  }
}

// Keys use "/", and so must the host: every supported host does.
if (sep !== "/") throw new Error("LocalStorage supports POSIX paths only");
