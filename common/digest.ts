import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";

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
  const hash = createHash("sha256");
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { hex: hash.digest("hex"), size };
}
