import { CodedError } from "../common/error-codes.js";
import { fingerprintOf, type PublicKey } from "../common/signing/keys.js";
import { signatureIssuers, userIdOf } from "../common/signing/signatures.js";
import type { Ctx } from "./http/context.js";
import { deps } from "./http/context.js";
import { pushPolicyKeys } from "./trust.js";

/**
 * Who signed a version, as the pages show it: the issuer the manifest signature names, and,
 * when the push policy holds that key (so the registry checked the signature at push), its
 * full fingerprint and user id, and the address of the public key it serves (/keys/<fpr>.asc).
 */
export interface SignerInfo {
  /** The fingerprint (or key id) the signature names. */
  issuer: string;
  /** Set when the push policy knows the key. */
  fingerprint?: string;
  userId?: string;
  keyHref?: string;
}

async function policyKeys(c: Ctx): Promise<PublicKey[]> {
  return (await pushPolicyKeys(c, c.get("config")).catch(() => null)) ?? [];
}

function matches(key: PublicKey, issuer: string): boolean {
  if (fingerprintOf(key) === issuer) return true;
  return key.getKeyIDs().some((id) => id.toHex().toUpperCase() === issuer);
}

export async function signerOf(c: Ctx, name: string, version: string): Promise<SignerInfo | null> {
  const signature = await deps(c).store.manifests.signature(name, version);
  if (!signature) return null;
  const issuer = (await signatureIssuers(signature).catch(() => []))[0];
  if (!issuer) return null;
  const key = (await policyKeys(c)).find((k) => matches(k, issuer));
  if (!key) return { issuer };
  const fingerprint = fingerprintOf(key);
  return { issuer, fingerprint, userId: userIdOf(key), keyHref: `/keys/${fingerprint}.asc` };
}

/** `GET /keys/{fingerprint}.asc`: a maintainer's public key, when the push policy holds it. */
export async function getPublicKey(c: Ctx): Promise<Response> {
  const file = c.req.param("file") ?? "";
  const m = /^([0-9A-F]{40})\.asc$/.exec(file);
  if (!m) throw new CodedError("NOT_FOUND", "keys are served as /keys/<40 hex digits, upper case>.asc");
  const key = (await policyKeys(c)).find((k) => fingerprintOf(k) === m[1]);
  if (!key) throw new CodedError("NOT_FOUND", `the push policy holds no key ${m[1]}`);
  return c.body(key.armor(), 200, { "content-type": "application/pgp-keys", "cache-control": "max-age=300" });
}
