import { UserError } from "../../common/errors.js";

/**
 * Streaming tar reader: ustar, PAX ('x' per entry, 'g' global) and GNU long names ('L', 'K'),
 * base-256 numbers. PAX values stay raw bytes (binary xattrs survive). Used by `templar inspect`
 * and by the archive source's extractor. Data of an entry is read with `entry.body()`; an entry
 * whose body is not read is skipped.
 */
export type TarEntryType =
  | "file"
  | "hardlink"
  | "symlink"
  | "chardev"
  | "blockdev"
  | "directory"
  | "fifo"
  | "contiguous"
  | "other";

export interface TarEntry {
  /** Raw path bytes (PAX path or GNU long name when present). */
  path: Buffer;
  type: TarEntryType;
  /** The raw typeflag character. */
  typeflag: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  linkpath: Buffer;
  devmajor: number;
  devminor: number;
  /** Every PAX record that applied (global then per-entry), raw values. */
  pax: Map<string, Buffer>;
  /** SCHILY.xattr.* records, name -> raw value. */
  xattrs: Map<string, Buffer>;
  /** Streams the entry's data; call at most once, before asking for the next entry. */
  body(): AsyncGenerator<Buffer>;
}

/** The archive is malformed or ends early. */
export class TarFormatError extends UserError {
  constructor(message: string) {
    super(message, 3);
    this.name = "TarFormatError";
  }
}

const TYPES: Record<string, TarEntryType> = {
  "0": "file",
  "\0": "file",
  "7": "contiguous",
  "1": "hardlink",
  "2": "symlink",
  "3": "chardev",
  "4": "blockdev",
  "5": "directory",
  "6": "fifo",
};

/** Pulls exact byte counts out of an async stream of chunks. */
class ByteQueue {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private ended = false;
  offset = 0;
  constructor(private readonly source: AsyncIterator<Uint8Array>) {}

  private async fill(n: number): Promise<boolean> {
    while (this.buffered < n && !this.ended) {
      const next = await this.source.next();
      if (next.done) this.ended = true;
      else if (next.value.length > 0) {
        const b = Buffer.isBuffer(next.value)
          ? next.value
          : Buffer.from(next.value.buffer, next.value.byteOffset, next.value.length);
        this.chunks.push(b);
        this.buffered += b.length;
      }
    }
    return this.buffered >= n;
  }

  /** Exactly n bytes, or null at a clean end of stream (nothing buffered). */
  async read(n: number): Promise<Buffer | null> {
    if (!(await this.fill(n))) {
      if (this.buffered === 0) return null;
      throw new TarFormatError(
        `truncated archive: ends inside a block at byte ${this.offset + this.buffered}`,
      );
    }
    return this.take(n);
  }

  private take(n: number): Buffer {
    this.offset += n;
    this.buffered -= n;
    const first = this.chunks[0]!;
    if (first.length === n) {
      this.chunks.shift();
      return first;
    }
    if (first.length > n) {
      this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let pos = 0;
    while (pos < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - pos);
      c.copy(out, pos, 0, k);
      pos += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    return out;
  }

  /** Up to `max` bytes that are available now (reading more if nothing is). */
  async readSome(max: number): Promise<Buffer> {
    if (this.buffered === 0 && !(await this.fill(1))) {
      throw new TarFormatError(`truncated archive: data ends early at byte ${this.offset}`);
    }
    return this.take(Math.min(max, this.chunks[0]!.length));
  }
}

function parseNumber(field: Buffer, what: string): number {
  if (field[0]! & 0x80) {
    // GNU base-256: big-endian two's complement with the top bit as marker.
    let value = 0n;
    for (let i = 1; i < field.length; i++) value = (value << 8n) | BigInt(field[i]!);
    if (field[0]! & 0x40) throw new TarFormatError(`negative base-256 ${what}`);
    value |= BigInt(field[0]! & 0x3f) << BigInt(8 * (field.length - 1));
    return Number(value);
  }
  const text = field
    .toString("latin1")
    .replace(/[\0 ]+$/, "")
    .replace(/^[\0 ]+/, "");
  if (text === "") return 0;
  if (!/^[0-7]+$/.test(text)) throw new TarFormatError(`bad ${what} field ${JSON.stringify(text)}`);
  return Number.parseInt(text, 8);
}

function cString(field: Buffer): Buffer {
  const nul = field.indexOf(0);
  return nul < 0 ? field : field.subarray(0, nul);
}

/** Parses PAX records: "<len> <key>=<value>\n", values kept as raw bytes. */
export function parsePax(data: Buffer): Map<string, Buffer> {
  const records = new Map<string, Buffer>();
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0) break; // padding some writers leave
    const space = data.indexOf(0x20, pos);
    const len = space < 0 ? Number.NaN : Number(data.toString("latin1", pos, space));
    if (!Number.isInteger(len) || len <= 0 || pos + len > data.length || data[pos + len - 1] !== 0x0a) {
      throw new TarFormatError(`malformed PAX record at offset ${pos}`);
    }
    const eq = data.indexOf(0x3d, space + 1);
    if (eq < 0 || eq >= pos + len) throw new TarFormatError(`malformed PAX record at offset ${pos}`);
    records.set(data.toString("utf8", space + 1, eq), Buffer.from(data.subarray(eq + 1, pos + len - 1)));
    pos += len;
  }
  return records;
}

function verifyChecksum(block: Buffer): boolean {
  const stored = parseNumber(block.subarray(148, 156), "checksum");
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < 512; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : block[i]!;
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  return stored === unsigned || stored === signed;
}

const paxNumber = (v: Buffer | undefined): number | undefined => {
  if (!v) return undefined;
  const n = Number(v.toString("latin1"));
  return Number.isFinite(n) ? Math.floor(n) : undefined;
};

/** Reads tar entries from a stream of bytes (e.g. a decompressor's output). */
export async function* readTar(source: AsyncIterable<Uint8Array>): AsyncGenerator<TarEntry> {
  const queue = new ByteQueue(source[Symbol.asyncIterator]());
  const globalPax = new Map<string, Buffer>();
  let localPax = new Map<string, Buffer>();
  let longName: Buffer | undefined;
  let longLink: Buffer | undefined;
  let pendingSkip = 0;

  const readData = async (size: number): Promise<Buffer> => {
    if (size > 64 << 20) throw new TarFormatError(`metadata entry of ${size} bytes is too large`);
    const data = await queue.read(size + ((512 - (size % 512)) % 512));
    if (!data) throw new TarFormatError("truncated archive: ends inside an entry");
    return data.subarray(0, size);
  };

  for (;;) {
    while (pendingSkip > 0) pendingSkip -= (await queue.readSome(pendingSkip)).length;
    const block = await queue.read(512);
    if (!block) throw new TarFormatError("truncated archive: no end-of-archive marker");
    if (block.every((b) => b === 0)) return; // end of archive (GNU tar reads one zero block as enough)
    if (!verifyChecksum(block)) throw new TarFormatError(`bad header checksum at byte ${queue.offset - 512}`);
    const typeflag = String.fromCharCode(block[156]!);
    const size = parseNumber(block.subarray(124, 136), "size");

    if (typeflag === "x" || typeflag === "g") {
      const records = parsePax(await readData(size));
      const target = typeflag === "g" ? globalPax : localPax;
      for (const [k, v] of records) target.set(k, v);
      continue;
    }
    if (typeflag === "L" || typeflag === "K") {
      const data = cString(await readData(size));
      if (typeflag === "L") longName = data;
      else longLink = data;
      continue;
    }

    const pax = new Map([...globalPax, ...localPax]);
    let path = cString(block.subarray(0, 100));
    const magic = block.toString("latin1", 257, 263);
    if (magic === "ustar\u0000" || magic === "ustar ") {
      const prefix = cString(block.subarray(345, 500));
      if (magic === "ustar\u0000" && prefix.length > 0)
        path = Buffer.concat([prefix, Buffer.from("/"), path]);
    }
    path = pax.get("path") ?? longName ?? path;
    const linkpath = pax.get("linkpath") ?? longLink ?? cString(block.subarray(157, 257));
    const entrySize = paxNumber(pax.get("size")) ?? size;
    const xattrs = new Map<string, Buffer>();
    for (const [k, v] of pax) if (k.startsWith("SCHILY.xattr.")) xattrs.set(k.slice(13), v);
    const type =
      TYPES[typeflag] ?? (path[path.length - 1] === 0x2f && typeflag === "0" ? "directory" : "other");
    // Hard links may carry data in pax archives; directories, links and devices never do.
    const hasData = type === "file" || type === "contiguous" || type === "other" || type === "hardlink";
    const dataSize = hasData ? entrySize : 0;
    let consumed = false;
    let remaining = dataSize;
    const entry: TarEntry = {
      path,
      type,
      typeflag,
      mode: parseNumber(block.subarray(100, 108), "mode"),
      uid: paxNumber(pax.get("uid")) ?? parseNumber(block.subarray(108, 116), "uid"),
      gid: paxNumber(pax.get("gid")) ?? parseNumber(block.subarray(116, 124), "gid"),
      size: entrySize,
      mtime: paxNumber(pax.get("mtime")) ?? parseNumber(block.subarray(136, 148), "mtime"),
      linkpath,
      devmajor: parseNumber(block.subarray(329, 337), "devmajor"),
      devminor: parseNumber(block.subarray(337, 345), "devminor"),
      pax,
      xattrs,
      async *body() {
        if (consumed) throw new Error("tar entry body read twice");
        consumed = true;
        while (remaining > 0) {
          const part = await queue.readSome(remaining);
          remaining -= part.length;
          yield part;
        }
      },
    };
    localPax = new Map();
    longName = undefined;
    longLink = undefined;
    yield entry;
    // Whatever the consumer did not read of the body, and the block padding, is skipped.
    pendingSkip = remaining + ((512 - (dataSize % 512)) % 512);
  }
}
