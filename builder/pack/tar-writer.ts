import { closeSync } from "node:fs";
import { checkUnchanged, openEntry, readSome, readWhole } from "./entry-file.js";
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
  /**
   * The entries to write, as walkTree(root) yields them (the default). Tests pass a walk made
   * earlier, to change the tree between the walk and the reads.
   */
  entries?: Iterable<WalkEntry>;
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

function allocChunk(options: TarWriteOptions, chunkSize: number): Buffer | Promise<Buffer> {
  return options.allocChunk ? options.allocChunk() : Buffer.allocUnsafe(chunkSize);
}

/**
 * The output side of the writer: the chunk being filled and how it is handed on. `flush` returns a
 * promise only when a receiver applies backpressure or no free chunk is left; otherwise the whole
 * entry is written without a turn of the event loop (a promise per entry costs more than the
 * header itself).
 */
class TarOutput {
  chunk: Buffer;
  pos = 0;
  size = 0;

  constructor(
    first: Buffer,
    private readonly options: TarWriteOptions,
    private readonly chunkSize: number,
  ) {
    this.chunk = first;
  }

  room(): number {
    return this.chunk.length - this.pos;
  }

  /** Emits the filled part of the chunk and takes the next one (none after the last). */
  flush(last = false): Promise<void> | undefined {
    if (this.pos === 0) return undefined;
    const out = this.chunk.subarray(0, this.pos);
    this.size += this.pos;
    this.pos = 0;
    const wait = this.options.emit(out);
    if (last) return wait;
    if (wait) return wait.then(() => this.nextChunk());
    return this.nextChunk();
  }

  private nextChunk(): Promise<void> | undefined {
    const next = allocChunk(this.options, this.chunkSize);
    if (next instanceof Promise) {
      return next.then((chunk) => {
        this.chunk = chunk;
      });
    }
    this.chunk = next;
    return undefined;
  }

  /** Flushes when the chunk is full. */
  flushIfFull(): Promise<void> | undefined {
    return this.pos === this.chunk.length ? this.flush() : undefined;
  }

  async put(bytes: Buffer): Promise<void> {
    let off = 0;
    while (off < bytes.length) {
      const n = Math.min(bytes.length - off, this.room());
      bytes.copy(this.chunk, this.pos, off, off + n);
      this.pos += n;
      off += n;
      await this.flushIfFull();
    }
  }

  async zeros(count: number): Promise<void> {
    let left = count;
    while (left > 0) {
      const n = Math.min(left, this.room());
      this.chunk.fill(0, this.pos, this.pos + n);
      this.pos += n;
      left -= n;
      await this.flushIfFull();
    }
  }

  /** File data across chunk boundaries (the fast path handles data that fits the chunk). */
  async copyFile(entry: WalkEntry, length: number): Promise<void> {
    const fd = openEntry(entry);
    try {
      // Checked before the first byte is handed on, as well as after the last.
      checkUnchanged(fd, entry);
      let left = length;
      let position = 0;
      while (left > 0) {
        const got = readSome(fd, entry, this.chunk, this.pos, Math.min(left, this.room()), position);
        this.pos += got;
        left -= got;
        position += got;
        await this.flushIfFull();
      }
      checkUnchanged(fd, entry);
    } finally {
      closeSync(fd);
    }
  }
}

/** Header and data of one entry: synchronous unless the chunk fills up (then see writeEntrySlow). */
function writeEntry(out: TarOutput, entry: WalkEntry, header: TarHeader): Promise<void> | undefined {
  // pos is always block aligned and a full chunk is flushed at once, so one header block fits.
  if (!encodeHeaderInto(header, out.chunk, out.pos)) return writeEntrySlow(out, entry, header, false);
  out.pos += BLOCK;
  if (header.type !== "file") return out.flushIfFull();
  const padding = paddingFor(header.size);
  if (header.size + padding > out.room()) return writeEntrySlow(out, entry, header, true);
  readWhole(entry, header.size, out.chunk, out.pos);
  out.chunk.fill(0, out.pos + header.size, out.pos + header.size + padding);
  out.pos += header.size + padding;
  return out.flushIfFull();
}

async function writeEntrySlow(
  out: TarOutput,
  entry: WalkEntry,
  header: TarHeader,
  headerWritten: boolean,
): Promise<void> {
  if (!headerWritten) await out.put(encodeHeader(header));
  else await out.flushIfFull();
  if (header.type !== "file") return;
  await out.copyFile(entry, header.size);
  await out.zeros(paddingFor(header.size));
}

/**
 * Writes the deterministic tar of `root` through `emit`. File data is read straight into the
 * output chunk (no intermediate copies); the event loop gets a turn only when a receiver asks for
 * backpressure, so compressor pipes drain while the next chunk is filled.
 */
export async function writeTar(options: TarWriteOptions): Promise<TarWriteResult> {
  const chunkSize = options.chunkSize ?? 1 << 20;
  if (chunkSize % BLOCK !== 0) throw new Error("internal: chunk size must be a whole number of blocks");
  const out = new TarOutput(await allocChunk(options, chunkSize), options, chunkSize);
  const walk = options.entries?.[Symbol.iterator]() ?? walkTree(options.root, options.warn);
  const ahead = await walkWhilePending(walk, options.xattrs);
  const xattrs = await options.xattrs;
  // The entries walked ahead, then the rest of the walk (a plain function: a generator chaining
  // the two cost one more TurboFan compile and a resume per entry).
  let aheadIndex = 0;
  const nextEntry = (): WalkEntry | undefined => {
    if (aheadIndex < ahead.length) return ahead[aheadIndex++];
    const next = walk.next();
    return next.done ? undefined : next.value;
  };
  let entries = 0;
  for (let entry = nextEntry(); entry !== undefined; entry = nextEntry()) {
    const wait = writeEntry(out, entry, headerFor(entry, xattrs, options.mtimeClamp));
    if (wait) await wait;
    entries++;
    if (options.onEntry && (entries & 63) === 0) options.onEntry(entries);
  }
  await out.put(END_OF_ARCHIVE);
  await out.flush(true);
  options.onEntry?.(entries);
  if (out.size % BLOCK !== 0) throw new Error("internal: tar size is not a whole number of blocks");
  return { entries, size: out.size };
}
