import { randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import {
  type FileHandle,
  link,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  rmdir,
  unlink,
} from "node:fs/promises";
import { dirname, join, sep } from "node:path";
import { finished, pipeline } from "node:stream/promises";
import {
  assertKey,
  type ByteRange,
  type DeleteOptions,
  type ObjectInfo,
  type ObjectWriter,
  type StorageDriver,
  type WriteOptions,
} from "./driver.js";
import { LocalBlobStream } from "./local-blob-stream.js";
import { fsyncDir, isNotDir, isNotFound, ListedFile, readdirOrEmpty, statOrNull } from "./local-fs.js";

/**
 * Temporary files live here, on the same filesystem as the objects, so rename and link are
 * atomic. Its name starts with a dot: no key can (keyProblem refuses hidden segments here too),
 * and listings skip it.
 */
const TMP_DIR = ".tmp";

/**
 * The local-directory driver: one file per object, under `root`. Every write is crash-safe:
 * data goes to a temporary file, is fsynced, and is renamed into place (replace) or link(2)ed
 * there (create-if-absent: EEXIST means another writer won, on this host or another one sharing
 * the directory), then the directory entry is fsynced too.
 */
export class LocalDriver implements StorageDriver {
  readonly kind = "local";
  readonly atomicWriteLimit = Number.POSITIVE_INFINITY;
  constructor(readonly root: string) {}

  async check(): Promise<void> {
    const probe = await this.tempPath();
    await writeDurable(probe, Buffer.from("ok"));
    await unlink(probe);
  }

  private path(key: string): string {
    assertKey(key);
    if (key.split("/").some((part) => part.startsWith("."))) {
      throw new Error(`invalid storage key ${JSON.stringify(key)}: hidden segments are reserved`);
    }
    return join(this.root, ...key.split("/"));
  }

  async get(key: string): Promise<Buffer | null> {
    try {
      return await readFile(this.path(key));
    } catch (err) {
      if (isNotFound(err) || isNotDir(err) || (err as NodeJS.ErrnoException).code === "EISDIR") return null;
      throw err;
    }
  }

  async stat(key: string): Promise<ObjectInfo | null> {
    const st = await statOrNull(this.path(key));
    return st?.isFile() ? { key, size: st.size, modified: st.mtime } : null;
  }

  async put(key: string, data: Buffer): Promise<void> {
    const path = this.path(key);
    const temp = await this.tempPath();
    try {
      await writeDurable(temp, data);
      await this.place(temp, path, false);
    } finally {
      await rm(temp, { force: true });
    }
  }

  async putIfAbsent(key: string, data: Buffer): Promise<boolean> {
    const path = this.path(key);
    const temp = await this.tempPath();
    try {
      await writeDurable(temp, data);
      return await this.place(temp, path, true);
    } finally {
      await rm(temp, { force: true });
    }
  }

  async delete(key: string, options: DeleteOptions = {}): Promise<void> {
    const path = this.path(key);
    await rm(path, { force: true });
    if (options.removeEmptyFolders) await this.pruneEmptyParents(dirname(path));
  }

  list(prefix: string): AsyncIterable<ObjectInfo> {
    // Walk the deepest directory the prefix names, then filter and sort by the whole key:
    // a depth-first walk would not give key order ("a.b" sorts before "a/b").
    const slash = prefix.lastIndexOf("/");
    const dirKey = slash >= 0 ? prefix.slice(0, slash) : "";
    if (dirKey !== "") assertKey(dirKey);
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
      if (entry.name.startsWith(".")) continue; // temporary files and directories
      const key = dirKey ? `${dirKey}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        // Descend only where keys below can still match the prefix.
        if (prefix.startsWith(`${key}/`) || `${key}/`.startsWith(prefix)) await this.walk(key, prefix, out);
      } else if (entry.isFile() && key.startsWith(prefix)) {
        out.push(new ListedFile(key, `${dir}/${entry.name}`));
      }
    }
  }

  async read(key: string, range?: ByteRange): Promise<LocalBlobStream | null> {
    let handle: FileHandle;
    try {
      handle = await open(this.path(key), "r");
    } catch (err) {
      if (isNotFound(err) || isNotDir(err)) return null;
      throw err;
    }
    // Opened first: a delete (GC) afterwards cannot cut a stream that has started.
    try {
      const end = range ? range.end : (await handle.stat()).size - 1;
      return new LocalBlobStream(handle, range?.start ?? 0, end);
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  async write(key: string, options: WriteOptions = {}): Promise<ObjectWriter> {
    const path = this.path(key);
    const temp = await this.tempPath();
    // flush: fsync before the file is closed, so what gets renamed into place is on disk.
    const stream = createWriteStream(temp, { flags: "wx", flush: true, highWaterMark: 1 << 20 });
    const done = (async () => {
      try {
        await finished(stream); // rejects when the stream was destroyed or a write failed
        return await this.place(temp, path, options.ifAbsent ?? false);
      } finally {
        await rm(temp, { force: true });
      }
    })();
    done.catch(() => {}); // the caller awaits it; never an unhandled rejection meanwhile
    return { stream, done };
  }

  async concat(target: string, sources: ObjectInfo[]): Promise<void> {
    const path = this.path(target);
    if (sources.length === 1) {
      // The one source becomes the target: no byte is copied.
      await this.place(this.path(sources[0]!.key), path, false);
      return;
    }
    const temp = await this.tempPath();
    try {
      const out = createWriteStream(temp, { flags: "wx", flush: true, highWaterMark: 1 << 20 });
      try {
        for (const source of sources) {
          const input = createReadStream(this.path(source.key), { highWaterMark: 1 << 20 });
          await pipeline(input, out, { end: false });
        }
        out.end();
        await finished(out);
      } catch (err) {
        out.destroy();
        throw err;
      }
      await this.place(temp, path, false);
    } finally {
      await rm(temp, { force: true });
    }
  }

  async sweepAbandoned(olderThan: Date): Promise<number> {
    const dir = join(this.root, TMP_DIR);
    let removed = 0;
    for (const name of await readdirOrEmpty(dir)) {
      const st = await statOrNull(join(dir, name));
      if (st && st.mtime < olderThan) {
        await rm(join(dir, name), { force: true });
        removed++;
      }
    }
    return removed;
  }

  // ---- helpers

  private async tempPath(): Promise<string> {
    const dir = join(this.root, TMP_DIR);
    await mkdir(dir, { recursive: true });
    return join(dir, `${Date.now()}-${randomBytes(8).toString("hex")}`);
  }

  /**
   * Moves a finished temporary file to its final path: link(2) when the key must be free (EEXIST:
   * false), rename otherwise. A concurrent delete may prune the parent directory between our mkdir
   * and the move: then the directory is made again.
   */
  private async place(temp: string, path: string, ifAbsent: boolean): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      await mkdir(dirname(path), { recursive: true });
      try {
        if (ifAbsent) await link(temp, path);
        else await rename(temp, path);
        await fsyncDir(dirname(path));
        return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "EEXIST" && ifAbsent) return false;
        if (!isNotFound(err) || attempt >= 5) throw err;
      }
    }
  }

  /** Removes directories a delete left empty, up to the top-level folder of the layout. */
  private async pruneEmptyParents(dir: string): Promise<void> {
    let current = dir;
    while (current.startsWith(`${this.root}${sep}`) && dirname(current) !== this.root) {
      try {
        await rmdir(current);
      } catch {
        return; // not empty (or gone): stop
      }
      current = dirname(current);
    }
  }
}

async function writeDurable(path: string, data: Buffer): Promise<void> {
  const handle = await open(path, "wx");
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

// Keys use "/", and so must the host: every supported host does.
if (sep !== "/") throw new Error("the local storage driver supports POSIX paths only");
