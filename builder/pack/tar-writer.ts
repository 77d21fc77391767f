import { closeSync, constants, openSync, readSync } from "node:fs";
import { UserError } from "../../common/errors.js";
import {
  BLOCK,
  END_OF_ARCHIVE,
  encodeHeader,
  encodeHeaderInto,
  paddingFor,
  type TarHeader,
} from "./tar-header.js";
import { deviceNumbers, type WalkEntry, walkTree } from "./walk.js";
import type { XattrMap } from "./xattrs.js";
import { xattrPaxRecords } from "./xattrs.js";

export interface TarWriteOptions {
  /** Absolute root directory, no trailing slash. */
  root: string;
  /** The tree's xattrs; while a promise of them is pending, the tree is walked ahead. */
  xattrs: XattrMap | Promise<XattrMap>;
  /** Every mtime above this (seconds) is written as this. */
  mtimeClamp?: number;
  /**
   * Receives the tar stream in chunks of `chunkSize` bytes (the last one shorter). The writer does
   * not touch a chunk after emitting it. Return a promise to apply backpressure.
   */
  emit: (chunk: Buffer) => Promise<void> | undefined;
  /** Supplies the next output buffer (a pool, so pages are not faulted in again); default: new ones. */
  allocChunk?: () => Buffer | Promise<Buffer>;
  onEntry?: (entries: number) => void;
  warn: (line: string) => void;
  chunkSize?: number;
}

export interface TarWriteResult {
  entries: number;
  size: number;
}

// O_NOATIME: reading the tree must not change it (root may use it on any file).
const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NOATIME ?? 0);

function openForRead(entry: WalkEntry): number {
  try {
    return openSync(entry.abs, OPEN_FLAGS);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === "EPERM" && OPEN_FLAGS !== constants.O_RDONLY) {
      try {
        return openSync(entry.abs, constants.O_RDONLY);
      } catch (again) {
        throw readFailure(again, entry);
      }
    }
    throw readFailure(err, entry);
  }
}

function readFailure(err: unknown, entry: WalkEntry): UserError {
  const e = err as NodeJS.ErrnoException;
  const why = e.code === "EACCES" || e.code === "EPERM" ? "permission denied" : (e.code ?? e.message);
  return new UserError(`cannot read ${entry.tarPath.toString("utf8")}: ${why}`);
}

function headerFor(entry: WalkEntry, xattrs: XattrMap, mtimeClamp: number | undefined): TarHeader {
  const { stat } = entry;
  const mode = Number(stat.mode & 0o7777n);
  // Whole seconds only (floor, also for times before 1970), clamped to SOURCE_DATE_EPOCH.
  let mtime = Number(
    stat.mtimeNs / 1_000_000_000n - (stat.mtimeNs < 0n && stat.mtimeNs % 1_000_000_000n ? 1n : 0n),
  );
  if (mtimeClamp !== undefined && mtime > mtimeClamp) mtime = mtimeClamp;
  const header: TarHeader = {
    path: entry.tarPath,
    type: entry.type,
    mode,
    uid: Number(stat.uid),
    gid: Number(stat.gid),
    size: entry.type === "file" ? Number(stat.size) : 0,
    mtime,
    pax: xattrs.size > 0 ? xattrPaxRecords(xattrs.get(entry.abs.toString("latin1")), mode) : undefined,
  };
  if (entry.linkpath) header.linkpath = entry.linkpath;
  if (entry.type === "chardev" || entry.type === "blockdev") {
    const { major, minor } = deviceNumbers(stat.rdev);
    header.devmajor = major;
    header.devminor = minor;
  }
  return header;
}

/** Entries walked ahead at most (their stats stay in memory until written). */
const WALK_AHEAD_LIMIT = 50_000;

/**
 * Walks the tree (readdir, lstat) while getfattr still runs, in slices of about 2 ms so that
 * its output is read meanwhile: those system calls are then done by the time the first header
 * can be written. getfattr takes ~70 ms over a Debian minbase here, all of it waiting.
 */
async function walkWhilePending(walk: Iterator<WalkEntry>, pending: unknown): Promise<WalkEntry[]> {
  const ahead: WalkEntry[] = [];
  if (!(pending instanceof Promise)) return ahead;
  let settled = false;
  pending.then(
    () => {
      settled = true;
    },
    () => {
      settled = true;
    },
  );
  await null; // an already settled promise: nothing to wait for
  while (!settled && ahead.length < WALK_AHEAD_LIMIT) {
    const sliceEnd = performance.now() + 2;
    do {
      const next = walk.next();
      if (next.done) return ahead;
      ahead.push(next.value);
    } while (performance.now() < sliceEnd);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return ahead;
}

function* chain<T>(first: T[], rest: Iterator<T>): Generator<T> {
  yield* first;
  for (let next = rest.next(); !next.done; next = rest.next()) yield next.value;
}

/**
 * Writes the deterministic tar of `root` through `emit`. File data is read straight into the
 * output chunk (no intermediate copies); the event loop gets a turn only when a receiver asks for
 * backpressure, so compressor pipes drain while the next chunk is filled.
 */
export async function writeTar(options: TarWriteOptions): Promise<TarWriteResult> {
  const chunkSize = options.chunkSize ?? 1 << 20;
  if (chunkSize % BLOCK !== 0) throw new Error("internal: chunk size must be a whole number of blocks");
  let chunk = options.allocChunk ? await options.allocChunk() : Buffer.allocUnsafe(chunkSize);
  let pos = 0;
  let size = 0;
  let entries = 0;

  const flush = async (last = false): Promise<void> => {
    if (pos === 0) return;
    const out = chunk.subarray(0, pos);
    size += pos;
    pos = 0;
    const wait = options.emit(out);
    if (wait) await wait;
    if (!last) chunk = options.allocChunk ? await options.allocChunk() : Buffer.allocUnsafe(chunkSize);
  };

  const put = async (bytes: Buffer): Promise<void> => {
    let off = 0;
    while (off < bytes.length) {
      const n = Math.min(bytes.length - off, chunk.length - pos);
      bytes.copy(chunk, pos, off, off + n);
      pos += n;
      off += n;
      if (pos === chunk.length) await flush();
    }
  };

  const zeros = async (count: number): Promise<void> => {
    let left = count;
    while (left > 0) {
      const n = Math.min(left, chunk.length - pos);
      chunk.fill(0, pos, pos + n);
      pos += n;
      left -= n;
      if (pos === chunk.length) await flush();
    }
  };

  const copyFile = async (entry: WalkEntry, length: number): Promise<void> => {
    const fd = openForRead(entry);
    try {
      let left = length;
      let position = 0;
      while (left > 0) {
        const want = Math.min(left, chunk.length - pos);
        let got: number;
        try {
          got = readSync(fd, chunk, pos, want, position);
        } catch (err) {
          throw readFailure(err, entry);
        }
        if (got === 0) {
          throw new UserError(`${entry.tarPath.toString("utf8")} shrank while it was being packed`);
        }
        pos += got;
        left -= got;
        position += got;
        if (pos === chunk.length) await flush();
      }
    } finally {
      closeSync(fd);
    }
  };

  const walk = walkTree(options.root, options.warn);
  const ahead = await walkWhilePending(walk, options.xattrs);
  const xattrs = await options.xattrs;
  for (const entry of chain(ahead, walk)) {
    const header = headerFor(entry, xattrs, options.mtimeClamp);
    // pos is always block aligned and chunks are whole blocks, so one header block always fits.
    if (encodeHeaderInto(header, chunk, pos)) {
      pos += BLOCK;
      if (pos === chunk.length) await flush();
    } else {
      await put(encodeHeader(header));
    }
    if (header.type === "file") {
      // Empty files are opened too, so an unreadable file is reported whatever its size.
      await copyFile(entry, header.size);
      await zeros(paddingFor(header.size));
    }
    entries++;
    if (options.onEntry && (entries & 63) === 0) options.onEntry(entries);
  }
  await put(END_OF_ARCHIVE);
  await flush(true);
  options.onEntry?.(entries);
  if (size % BLOCK !== 0) throw new Error("internal: tar size is not a whole number of blocks");
  return { entries, size };
}
