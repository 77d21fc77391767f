import { createHash, type Hash } from "node:crypto";
import { type FileHandle, open } from "node:fs/promises";

/** A content digest as written on the wire and in manifests: "sha256:<64 hex>". */
export type Digest = `sha256:${string}`;

const HEX64 = /^[0-9a-f]{64}$/;

export function isSha256Hex(hex: string): boolean {
  return HEX64.test(hex);
}

export function toDigest(hex: string): Digest {
  if (!isSha256Hex(hex)) throw new Error(`not a sha256 hex digest: ${hex}`);
  return `sha256:${hex}`;
}

/** Returns the hex part of "sha256:<hex>", or null when the string is not such a digest. */
export function parseDigest(digest: string): string | null {
  if (!digest.startsWith("sha256:")) return null;
  const hex = digest.slice(7);
  return isSha256Hex(hex) ? hex : null;
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

export async function sha256File(path: string): Promise<{ hex: string; size: number }> {
  const file = await open(path, "r");
  try {
    const hash = createHash("sha256");
    const size = await hashOpenFile(file, hash);
    return { hex: hash.digest("hex"), size };
  } finally {
    await file.close();
  }
}

/**
 * Feeds an open file's bytes, from its start, into `hash`; returns how many there were. One
 * buffer read into again and again: a stream's fresh buffer per chunk made hashing a 62 MiB
 * template take three times as long (page faults on every new chunk).
 */
export async function hashOpenFile(file: FileHandle, hash: Hash): Promise<number> {
  const buffer = Buffer.allocUnsafe(1 << 20);
  let size = 0;
  for (;;) {
    const { bytesRead } = await file.read(buffer, 0, buffer.length, size);
    if (bytesRead === 0) return size;
    hash.update(buffer.subarray(0, bytesRead));
    size += bytesRead;
  }
}
