import { accessSync, constants } from "node:fs";
import { createRequire } from "node:module";
import { delimiter, join } from "node:path";
import type { Transform } from "node:stream";
import { UserError } from "../errors.js";
import { compressionOf, type Format } from "../formats.js";

/**
 * The one table of compression formats: which program does the work when installed (fixed
 * flags, so artifacts are reproducible for a given program version) and which in-process
 * transform stands in when it is not. Adding a format means adding one row here.
 */
export interface ProgramSpec {
  command: string;
  args: string[];
  /**
   * Reads whole jobs (MiBs) of input ahead of its compressing threads, so a producer that is
   * slow to wake up costs it nothing: the packer may then lower its own priority (tar-producer).
   */
  readsAhead?: boolean;
}

interface CodecRow {
  /** Programs to try in order, for compressing. */
  compress: ProgramSpec[];
  decompress: ProgramSpec[];
  /** In-process stand-ins; undefined when Node has none (xz). */
  inProcessCompress?: () => Promise<Transform>;
  inProcessDecompress?: () => Promise<Transform>;
  /** Package that provides the program, for error messages. */
  packageHint: string;
}

interface ZstdStreams {
  ZstdCompressTransform: new (level: number) => Transform;
  ZstdDecompressTransform: new () => Transform;
}

let zstdStreams: Promise<ZstdStreams> | undefined;

/**
 * zstd-codec's stream transforms (`lib/zstd-stream.js`, not exported by its index): unlike its
 * Simple API (aborts at 5 MiB) and Streaming API (buffers everything) they work chunk by chunk,
 * so memory stays bounded (98 MB peak on 100 MiB).
 */
function loadZstd(): Promise<ZstdStreams> {
  zstdStreams ??= new Promise((resolve) => {
    const require = createRequire(import.meta.url);
    const mod = require("zstd-codec/lib/zstd-stream.js") as { run(f: (s: ZstdStreams) => void): void };
    mod.run(resolve);
  });
  return zstdStreams;
}

export const CODECS: Record<Format, CodecRow> = {
  "tar.zst": {
    // 8 MiB jobs at -3: readsAhead.
    compress: [{ command: "zstd", args: ["-3", "-T0", "-q", "-c"], readsAhead: true }],
    decompress: [{ command: "zstd", args: ["-d", "-q", "-c"] }],
    inProcessCompress: async () => new (await loadZstd()).ZstdCompressTransform(3),
    inProcessDecompress: async () => new (await loadZstd()).ZstdDecompressTransform(),
    packageHint: "zstd",
  },
  "tar.gz": {
    // -n: no file name and no mtime in the gzip header (reproducible).
    compress: [
      { command: "pigz", args: ["-6", "-n", "-c"] },
      { command: "gzip", args: ["-6", "-n", "-c"] },
    ],
    decompress: [
      { command: "pigz", args: ["-d", "-c"] },
      { command: "gzip", args: ["-d", "-c"] },
    ],
    // node:zlib loads only when used: `templar pack` start-up is benchmarked.
    inProcessCompress: async () => (await import("node:zlib")).createGzip({ level: 6 }),
    inProcessDecompress: async () => (await import("node:zlib")).createGunzip(),
    packageHint: "pigz or gzip",
  },
  "tar.xz": {
    compress: [{ command: "xz", args: ["-6", "-T0", "-q", "-c"] }],
    decompress: [{ command: "xz", args: ["-d", "-q", "-c"] }],
    packageHint: "xz-utils",
  },
};

const found = new Map<string, string | null>();

/** Looks a program up on PATH (cached); null when absent. */
export function findProgram(command: string): string | null {
  const cached = found.get(command);
  if (cached !== undefined) return cached;
  let hit: string | null = null;
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, command), constants.X_OK);
      hit = join(dir, command);
      break;
    } catch {
      // not here
    }
  }
  found.set(command, hit);
  return hit;
}

/** What will do the work for one format: a program, or an in-process transform factory. */
export type CodecChoice =
  | { kind: "program"; spec: ProgramSpec; path: string; label: string }
  | { kind: "in-process"; create: () => Promise<Transform>; label: string };

export function chooseCodec(
  format: Format,
  direction: "compress" | "decompress",
  inProcessOnly = false,
): CodecChoice {
  const row = CODECS[format];
  if (!inProcessOnly) {
    for (const spec of row[direction]) {
      const path = findProgram(spec.command);
      if (path) return { kind: "program", spec, path, label: spec.command };
    }
  }
  const create = direction === "compress" ? row.inProcessCompress : row.inProcessDecompress;
  if (create) return { kind: "in-process", create, label: `in-process ${format.slice(4)}` };
  const programs = row[direction].map((s) => s.command).join(" or ");
  throw new UserError(
    `${format} needs the ${programs} program (package ${row.packageHint}): Node has no in-process ${format.slice(4)} ${direction === "compress" ? "compressor" : "decompressor"}`,
  );
}

/** Recognises a compressed tar by its first bytes. */
export function formatFromMagic(head: Buffer): Format | null {
  return compressionOf(head)?.format ?? null;
}
