import { usageError } from "./errors.js";

/**
 * Artifact formats and compressions (docs/formats.md): the ONE table of their names,
 * magic bytes and media types. A template is one uncompressed tar, compressed into each format.
 */
export const FORMATS = ["tar.zst", "tar.gz", "tar.xz"] as const;
export type Format = (typeof FORMATS)[number];

export interface Compression {
  /** The program's name: zstd, gzip, xz, bzip2. */
  name: string;
  /** The template format it makes; null for compressions we only read (upstream archives). */
  format: Format | null;
  /** What users type: `--formats zst,gz`, `--format xz`. */
  short: string;
  /** First bytes of every stream. */
  magic: readonly number[];
  /** HTTP Content-Type of an artifact. */
  contentType: string;
}

export const COMPRESSIONS: readonly Compression[] = [
  {
    name: "zstd",
    format: "tar.zst",
    short: "zst",
    magic: [0x28, 0xb5, 0x2f, 0xfd],
    contentType: "application/zstd",
  },
  { name: "gzip", format: "tar.gz", short: "gz", magic: [0x1f, 0x8b], contentType: "application/gzip" },
  {
    name: "xz",
    format: "tar.xz",
    short: "xz",
    magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00],
    contentType: "application/x-xz",
  },
  {
    name: "bzip2",
    format: null,
    short: "bz2",
    magic: [0x42, 0x5a, 0x68],
    contentType: "application/x-bzip2",
  },
];

export function isFormat(text: string): text is Format {
  return (FORMATS as readonly string[]).includes(text);
}

/** The compression of a template format. */
export function compressionOfFormat(format: Format): Compression {
  return COMPRESSIONS.find((c) => c.format === format)!;
}

/** The compression whose magic bytes `head` starts with; null when none does (maybe a plain tar). */
export function compressionOf(head: Uint8Array): Compression | null {
  return (
    COMPRESSIONS.find((c) => head.length >= c.magic.length && c.magic.every((b, i) => head[i] === b)) ?? null
  );
}

/** "zst" or "tar.zst" -> "tar.zst"; null for anything else. */
export function parseFormat(text: string): Format | null {
  const trimmed = text.trim();
  const format = trimmed.startsWith("tar.") ? trimmed : `tar.${trimmed}`;
  return isFormat(format) ? format : null;
}

/** A comma-separated list of formats as users type it (`zst,gz`); duplicates dropped, order kept. */
export function parseFormatList(list: string, what = "--formats"): Format[] {
  const formats: Format[] = [];
  for (const item of list
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)) {
    const format = parseFormat(item);
    if (!format) throw usageError(`${what}: unknown format ${JSON.stringify(item)} (known: ${shortNames()})`);
    if (!formats.includes(format)) formats.push(format);
  }
  if (formats.length === 0) throw usageError(`${what} is empty (known: ${shortNames()})`);
  return formats;
}

function shortNames(): string {
  return FORMATS.map((f) => compressionOfFormat(f).short).join(", ");
}
