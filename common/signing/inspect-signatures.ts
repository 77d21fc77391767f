import { createReadStream } from "node:fs";
import { readFile } from "node:fs/promises";
import { readPublicKeysFile } from "./keys.js";
import { signatureIssuers, verifyDetachedStream } from "./signatures.js";

/** One signed file as `templar inspect` reports it. */
export interface SignatureCheck {
  /** "manifest", or the artifact's format. */
  what: string;
  signature: string;
  /** none: no .asc beside it; unverified: no keyring given; verified; failed. */
  status: "none" | "unverified" | "verified" | "failed";
  /** verified: the signer's fingerprint; unverified: the issuer named in the signature. */
  signer?: string;
  userId?: string;
  problem?: string;
}

/**
 * Checks `<file>.asc` beside each file: against the keyring when one is given (streamed, so an
 * artifact of any size is fine), else only reads who claims to have signed. A missing keyring
 * file throws (exit 4); a signature that does not verify is a `failed` row.
 */
export async function checkSignatures(
  files: { what: string; path: string }[],
  keyring: string | undefined,
): Promise<SignatureCheck[]> {
  const trusted = keyring === undefined ? null : await readPublicKeysFile(keyring);
  const rows: SignatureCheck[] = [];
  for (const file of files) {
    const signature = `${file.path}.asc`;
    const armoured = await readFile(signature).catch(() => null);
    if (!armoured) {
      rows.push({ what: file.what, signature, status: "none" });
      continue;
    }
    if (!trusted) {
      const issuers = await signatureIssuers(armoured).catch(() => []);
      rows.push({
        what: file.what,
        signature,
        status: "unverified",
        signer: issuers.join(", ") || "unknown",
      });
      continue;
    }
    const result = await verifyDetachedStream(armoured, createReadStream(file.path), trusted);
    if ("problem" in result)
      rows.push({ what: file.what, signature, status: "failed", problem: result.problem });
    else
      rows.push({
        what: file.what,
        signature,
        status: "verified",
        signer: result.fingerprint,
        userId: result.userId,
      });
  }
  return rows;
}
