import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { ExitCode, UserError } from "../../../common/errors.js";

/**
 * Checksum files as upstreams publish them (recipes/ARCHIVE.md):
 * - bsd: `SHA256 (file) = hex` (Fedora, CentOS Stream; Fedora adds `# file: N bytes` comments);
 * - gnu: `hex  file` or `hex *file` (sha256sum output; the algorithm follows from the length);
 * - gentoo-digests: `# BLAKE2B HASH` / `# SHA512 HASH` sections, each followed by `hex  file`
 *   lines, in any order.
 * Only the text a signature covered is ever given to these parsers.
 */
export const CHECKSUM_FORMATS = ["bsd", "gnu", "gentoo-digests"] as const;
export type ChecksumFormat = (typeof CHECKSUM_FORMATS)[number];

/** Algorithms we check, named as node:crypto names them. */
export type Algorithm = "sha256" | "sha512" | "blake2b512";

/** Every digest listed for one file name, by algorithm; `size` from Fedora's `# file: N bytes`. */
export interface FileDigests {
  digests: Partial<Record<Algorithm, string>>;
  size?: number;
}

export type ChecksumTable = Map<string, FileDigests>;

const BSD_ALGORITHMS: Record<string, Algorithm> = {
  SHA256: "sha256",
  SHA512: "sha512",
  BLAKE2B: "blake2b512",
  BLAKE2B512: "blake2b512",
};
const GNU_BY_LENGTH: Record<number, Algorithm> = { 64: "sha256", 128: "sha512" };
const GENTOO_SECTIONS: Record<string, Algorithm> = {
  SHA256: "sha256",
  SHA512: "sha512",
  BLAKE2B: "blake2b512",
};

function entry(table: ChecksumTable, file: string): FileDigests {
  const name = file.replace(/^\.\//, "");
  let found = table.get(name);
  if (!found) {
    found = { digests: {} };
    table.set(name, found);
  }
  return found;
}

function setDigest(
  table: ChecksumTable,
  file: string,
  algorithm: Algorithm,
  hex: string,
  where: string,
): void {
  const digests = entry(table, file).digests;
  const lower = hex.toLowerCase();
  if (digests[algorithm] && digests[algorithm] !== lower) {
    throw new UserError(`${where}: two different ${algorithm} digests for ${file}`, ExitCode.verification);
  }
  digests[algorithm] = lower;
}

/** Parses a checksum file's (signed) text. `where` names the file in errors. */
export function parseChecksums(text: string, format: ChecksumFormat, where: string): ChecksumTable {
  const table: ChecksumTable = new Map();
  let section: Algorithm | null = null;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "") continue;
    if (format === "bsd") {
      const size = /^#\s*(.+?):\s*(\d+)\s+bytes$/.exec(line);
      if (size) {
        entry(table, size[1]!).size = Number(size[2]);
        continue;
      }
      if (line.startsWith("#")) continue;
      const m = /^([A-Z0-9-]+)\s*\((.+)\)\s*=\s*([0-9a-fA-F]+)$/.exec(line);
      const algorithm = m ? BSD_ALGORITHMS[m[1]!.replace("-", "")] : undefined;
      if (m && algorithm) setDigest(table, m[2]!, algorithm, m[3]!, where);
      continue;
    }
    if (format === "gentoo-digests") {
      const header = /^#\s*([A-Z0-9]+)\s+HASH$/.exec(line);
      if (header) {
        section = GENTOO_SECTIONS[header[1]!] ?? null; // unknown algorithms: skip their lines
        continue;
      }
      if (line.startsWith("#")) continue;
      const m = /^([0-9a-fA-F]+)\s+\*?(.+)$/.exec(line);
      if (m && section) setDigest(table, m[2]!, section, m[1]!, where);
      continue;
    }
    if (line.startsWith("#")) continue;
    const m = /^([0-9a-fA-F]+)\s+\*?(.+)$/.exec(line);
    const algorithm = m ? GNU_BY_LENGTH[m[1]!.length] : undefined;
    if (m && algorithm) setDigest(table, m[2]!, algorithm, m[1]!, where);
  }
  if (table.size === 0) {
    throw new UserError(`${where}: no ${format} checksum lines found`, ExitCode.verification);
  }
  return table;
}

/** The digests listed for `file` (matched by base name, as upstream lists them). */
export function digestsFor(table: ChecksumTable, file: string, where: string): FileDigests {
  const found = table.get(file) ?? table.get(file.split("/").pop()!);
  if (!found || Object.keys(found.digests).length === 0) {
    throw new UserError(`${where} lists no checksum for ${file}`, ExitCode.verification);
  }
  return found;
}

/** Computes several digests of a file in one read. */
export async function hashFile(
  path: string,
  algorithms: Algorithm[],
): Promise<{ digests: Record<string, string>; size: number }> {
  const hashes = algorithms.map((a) => [a, createHash(a)] as const);
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    for (const [, h] of hashes) h.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { digests: Object.fromEntries(hashes.map(([a, h]) => [a, h.digest("hex")])), size };
}

/**
 * Checks a downloaded file against every digest listed for it (SHA-256/512 and BLAKE2B alike)
 * and the listed size. Returns the file's sha256 (computed even when not listed: the manifest
 * records it).
 */
export async function checkFile(path: string, expected: FileDigests, what: string): Promise<string> {
  const algorithms = new Set<Algorithm>(["sha256", ...(Object.keys(expected.digests) as Algorithm[])]);
  const actual = await hashFile(path, [...algorithms]);
  if (expected.size !== undefined && expected.size !== actual.size) {
    throw new UserError(
      `${what}: size ${actual.size} bytes, but the checksum file says ${expected.size}: refusing it`,
      ExitCode.verification,
    );
  }
  for (const [algorithm, hex] of Object.entries(expected.digests)) {
    if (actual.digests[algorithm] !== hex) {
      throw new UserError(
        `${what}: ${algorithm} is ${actual.digests[algorithm]}, expected ${hex}: the download is corrupt or was tampered with`,
        ExitCode.verification,
      );
    }
  }
  return actual.digests.sha256!;
}
