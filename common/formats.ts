import { usageError } from "./errors.js";

/**
 * Artifact formats and compressions (docs/formats.md): the ONE table of their names,
 * magic bytes and media types. A template is one uncompressed tar, compressed into each format.
 */
export const FORMATS = ["tar.zst", "tar.gz", "tar.xz"] as const;
export type Format = (typeof FORMATS)[number];

/**
 * The metadata tarballs LXC and Incus hosts need beside a `tar.xz` of the root filesystem
 * (README "LXC" and "Incus and LXD"): tiny xz-compressed tars whose bytes follow from the
 * manifest's fields. They are artifacts (listed, uploaded, signed and kept like the others) but
 * not compressions of the root filesystem tar.
 */
export const HOST_META_FORMATS = ["lxc-meta.tar.xz", "incus-meta.tar.xz"] as const;
export type HostMetaFormat = (typeof HOST_META_FORMATS)[number];

/** Every artifact a manifest may list: the root filesystem's compressions and the host metadata. */
export const ARTIFACT_FORMATS = [...FORMATS, ...HOST_META_FORMATS] as const;
export type ArtifactFormat = (typeof ARTIFACT_FORMATS)[number];

/** Host names `--formats` and a recipe's `formats:` accept, and the artifacts each one needs. */
export const HOST_BUNDLES: Readonly<Record<string, readonly ArtifactFormat[]>> = {
  lxc: ["tar.xz", "lxc-meta.tar.xz"],
  incus: ["tar.xz", "incus-meta.tar.xz"],
};

export function isArtifactFormat(text: string): text is ArtifactFormat {
  return (ARTIFACT_FORMATS as readonly string[]).includes(text);
}

export function isHostMetaFormat(text: string): text is HostMetaFormat {
  return (HOST_META_FORMATS as readonly string[]).includes(text);
}

/** What a pack writes: root filesystem formats and host metadata tarballs. */
export interface PackOutputs {
  formats: Format[];
  meta: HostMetaFormat[];
}

/**
 * Splits a list of format and host names (`zst`, `tar.xz`, `lxc`, `incus`) into what the packer
 * makes; duplicates dropped, order kept. `where` names the flag or recipe field in errors.
 */
export function parsePackOutputs(items: readonly string[], where = "--formats"): PackOutputs {
  const out: PackOutputs = { formats: [], meta: [] };
  for (const item of items.map((s) => s.trim()).filter(Boolean)) {
    const bundle = HOST_BUNDLES[item];
    const single = parseFormat(item);
    const parts: readonly ArtifactFormat[] | null = bundle ?? (single ? [single] : null);
    if (!parts) {
      throw usageError(
        `${where}: unknown format ${JSON.stringify(item)} (known: ${shortNames()}, ${Object.keys(HOST_BUNDLES).join(", ")})`,
      );
    }
    for (const part of parts) {
      if (isHostMetaFormat(part)) {
        if (!out.meta.includes(part)) out.meta.push(part);
      } else if (!out.formats.includes(part as Format)) out.formats.push(part as Format);
    }
  }
  if (out.formats.length === 0) throw usageError(`${where} is empty (known: ${shortNames()})`);
  return out;
}

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

/** The HTTP Content-Type of an artifact: its compression's, or xz's for the host metadata. */
export function contentTypeOf(format: ArtifactFormat): string {
  return isFormat(format) ? compressionOfFormat(format).contentType : "application/x-xz";
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
