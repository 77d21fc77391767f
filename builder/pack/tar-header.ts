/**
 * Hand-written ustar + PAX header encoder. tar-stream decodes and encodes PAX values as UTF-8 and
 * clamps large ids, which corrupts binary `SCHILY.xattr.security.capability`, so the
 * headers are built here byte by byte. Values are Buffers all the way through.
 *
 * Determinism: every field is a function of the entry alone. No atime/ctime, no sub-second
 * times, empty uname/gname, the PAX header's own name is derived from the path (GNU tar puts
 * its PID there by default).
 */

export const BLOCK = 512;

export type TarType = "file" | "hardlink" | "symlink" | "chardev" | "blockdev" | "directory" | "fifo";

const TYPEFLAG: Record<TarType, number> = {
  file: 0x30,
  hardlink: 0x31,
  symlink: 0x32,
  chardev: 0x33,
  blockdev: 0x34,
  directory: 0x35,
  fifo: 0x36,
};

/** Everything a header holds. `path` and `linkpath` are raw bytes (file names need not be UTF-8). */
export interface TarHeader {
  path: Buffer;
  type: TarType;
  /** Permission and set-id bits only (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  /** Bytes of data that follow (0 for everything but regular files). */
  size: number;
  /** Whole seconds. */
  mtime: number;
  linkpath?: Buffer;
  devmajor?: number;
  devminor?: number;
  /** Extra PAX records (e.g. SCHILY.acl.access, SCHILY.xattr.*), written in the order given. */
  pax?: [string, Buffer][];
}

const MAX_OCTAL_7 = 0o7777777; // 8-byte fields: 7 digits + NUL (2^21 - 1)
const MAX_OCTAL_11 = 0o77777777777; // 12-byte fields: 11 digits + NUL (8 GiB - 1)

/** Zero-padded octal digits and a NUL, written byte by byte (no string: this runs per entry). */
function writeOctal(block: Buffer, offset: number, width: number, value: number): void {
  let v = value;
  for (let i = offset + width - 2; i >= offset; i--) {
    block[i] = 0x30 + (v % 8);
    v = Math.floor(v / 8);
  }
  block[offset + width - 1] = 0;
}

const MAGIC = Buffer.from("ustar\u000000", "latin1");

/** One PAX record: "<len> <key>=<value>\n", where <len> counts the whole record including itself. */
export function paxRecord(key: string, value: Buffer): Buffer {
  const keyBytes = Buffer.from(key, "utf8");
  const base = keyBytes.length + value.length + 3; // space, '=', newline
  const digits = String(base).length;
  let len = base + digits;
  if (String(len).length > digits) len += 1;
  const head = Buffer.from(`${len} `, "latin1");
  const record = Buffer.allocUnsafe(len);
  let pos = head.copy(record, 0);
  pos += keyBytes.copy(record, pos);
  record[pos++] = 0x3d;
  pos += value.copy(record, pos);
  record[pos++] = 0x0a;
  if (pos !== len) throw new Error(`internal: PAX record length ${pos} != ${len}`);
  return record;
}

/** Writes one ustar header block at `at` in `block` (the 512 bytes must be zero). */
function ustarBlock(
  block: Buffer,
  at: number,
  name: Buffer,
  typeflag: number,
  mode: number,
  uid: number,
  gid: number,
  size: number,
  mtime: number,
  linkname: Buffer | undefined,
  devmajor: number,
  devminor: number,
): void {
  name.copy(block, at, 0, Math.min(name.length, 100));
  writeOctal(block, at + 100, 8, mode);
  writeOctal(block, at + 108, 8, uid);
  writeOctal(block, at + 116, 8, gid);
  writeOctal(block, at + 124, 12, size);
  writeOctal(block, at + 136, 12, mtime);
  block.fill(0x20, at + 148, at + 156); // checksum is computed with its own field as spaces
  block[at + 156] = typeflag;
  if (linkname) linkname.copy(block, at + 157, 0, Math.min(linkname.length, 100));
  MAGIC.copy(block, at + 257);
  // uname (265) and gname (297) stay empty: numeric ids only.
  writeOctal(block, at + 329, 8, devmajor);
  writeOctal(block, at + 337, 8, devminor);
  // Checksum: only the regions written above can be non-zero (the block started zeroed).
  let sum = 0;
  const nameEnd = at + Math.min(name.length, 100);
  for (let i = at; i < nameEnd; i++) sum += block[i]!;
  for (let i = at + 100; i < at + 157; i++) sum += block[i]!;
  if (linkname) for (let i = at + 157, e = i + Math.min(linkname.length, 100); i < e; i++) sum += block[i]!;
  for (let i = at + 257; i < at + 265; i++) sum += block[i]!;
  for (let i = at + 329; i < at + 345; i++) sum += block[i]!;
  writeOctal(block, at + 148, 7, sum);
  block[at + 155] = 0x20; // "%06o\0 " as GNU tar writes it
}

/** The deterministic name of a PAX header block: "<dir>/PaxHeaders/<base>", at most 100 bytes. */
function paxHeaderName(path: Buffer): Buffer {
  let end = path.length;
  if (end > 1 && path[end - 1] === 0x2f) end--; // directories end in "/"
  const slash = path.lastIndexOf(0x2f, end - 1);
  const dir = slash >= 0 ? path.subarray(0, slash) : Buffer.from(".");
  const base = path.subarray(slash + 1, end);
  const name = Buffer.concat([dir, Buffer.from("/PaxHeaders/"), base]);
  return name.length <= 100 ? name : name.subarray(0, 100);
}

function padding(size: number): number {
  const rest = size % BLOCK;
  return rest === 0 ? 0 : BLOCK - rest;
}

/**
 * Encodes the header block(s) of one entry: a PAX 'x' header with its records when any field
 * does not fit ustar (or extra records are given), then the ustar header.
 */
export function encodeHeader(h: TarHeader): Buffer {
  const out = Buffer.alloc(BLOCK);
  if (encodeHeaderInto(h, out, 0)) return out;
  return encodeHeaderWithPax(h);
}

function fitsUstar(h: TarHeader): boolean {
  return (
    h.path.length <= 100 &&
    (!h.linkpath || h.linkpath.length <= 100) &&
    h.size <= MAX_OCTAL_11 &&
    h.uid <= MAX_OCTAL_7 &&
    h.gid <= MAX_OCTAL_7 &&
    h.mtime >= 0 &&
    h.mtime <= MAX_OCTAL_11 &&
    (h.devmajor ?? 0) <= MAX_OCTAL_7 &&
    (h.devminor ?? 0) <= MAX_OCTAL_7 &&
    (!h.pax || h.pax.length === 0)
  );
}

/**
 * The fast path, taken by almost every entry: when the entry needs no PAX header, writes its one
 * header block straight into `out` at `offset` (512 bytes, overwritten) and returns true.
 */
export function encodeHeaderInto(h: TarHeader, out: Buffer, offset: number): boolean {
  if (!fitsUstar(h)) return false;
  out.fill(0, offset, offset + BLOCK);
  ustarBlock(
    out,
    offset,
    h.path,
    TYPEFLAG[h.type],
    h.mode & 0o7777,
    h.uid,
    h.gid,
    h.size,
    h.mtime,
    h.linkpath,
    h.devmajor ?? 0,
    h.devminor ?? 0,
  );
  return true;
}

function encodeHeaderWithPax(h: TarHeader): Buffer {
  const records: Buffer[] = [];
  if (h.path.length > 100) records.push(paxRecord("path", h.path));
  if (h.linkpath && h.linkpath.length > 100) records.push(paxRecord("linkpath", h.linkpath));
  if (h.size > MAX_OCTAL_11) records.push(paxRecord("size", Buffer.from(String(h.size))));
  if (h.uid > MAX_OCTAL_7) records.push(paxRecord("uid", Buffer.from(String(h.uid))));
  if (h.gid > MAX_OCTAL_7) records.push(paxRecord("gid", Buffer.from(String(h.gid))));
  const mtimeFits = h.mtime >= 0 && h.mtime <= MAX_OCTAL_11;
  if (!mtimeFits) records.push(paxRecord("mtime", Buffer.from(String(h.mtime))));
  if (h.pax) for (const [key, value] of h.pax) records.push(paxRecord(key, value));

  const devmajor = h.devmajor ?? 0;
  const devminor = h.devminor ?? 0;
  if (devmajor > MAX_OCTAL_7 || devminor > MAX_OCTAL_7) {
    throw new Error(`device number ${devmajor}:${devminor} does not fit a tar header`);
  }
  const main = Buffer.alloc(BLOCK);
  ustarBlock(
    main,
    0,
    h.path,
    TYPEFLAG[h.type],
    h.mode & 0o7777,
    h.uid > MAX_OCTAL_7 ? 0 : h.uid,
    h.gid > MAX_OCTAL_7 ? 0 : h.gid,
    h.size > MAX_OCTAL_11 ? 0 : h.size,
    mtimeFits ? h.mtime : 0,
    h.linkpath,
    devmajor,
    devminor,
  );

  const body = Buffer.concat(records);
  const mtime = mtimeFits ? h.mtime : 0;
  const paxHeader = Buffer.alloc(BLOCK);
  ustarBlock(paxHeader, 0, paxHeaderName(h.path), 0x78, 0o644, 0, 0, body.length, mtime, undefined, 0, 0);
  return Buffer.concat([paxHeader, body, Buffer.alloc(padding(body.length)), main]);
}

/** Zero bytes that round `size` up to a whole block. */
export function paddingFor(size: number): number {
  return padding(size);
}

/** The end-of-archive marker: two zero blocks (GNU tar then pads to its 10 KiB record; we do not). */
export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);
