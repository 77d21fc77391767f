import { sha256Hex } from "../digest.js";

/** An RFC 4122 v4-shaped UUID from a sha256: the same template, the same serial number. */
export function uuidFromHex(hexDigest: string): string {
  const h = hexDigest.slice(0, 32).split("");
  h[12] = "4";
  h[16] = ((Number.parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
  const s = h.join("");
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20, 32)}`;
}

/** A UUID that is the same for the same text (documents derived from a manifest). */
export function stableUuid(text: string): string {
  return uuidFromHex(sha256Hex(text));
}
