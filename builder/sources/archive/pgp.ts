import * as openpgp from "openpgp";
import { ExitCode, UserError } from "../../../common/errors.js";
import {
  fingerprintOf,
  normaliseFingerprint,
  type PublicKey,
  readPublicKeys,
} from "../../../common/signing/keys.js";

/**
 * Upstream signatures checked against keys the recipe pins BY FINGERPRINT. Key material comes
 * from a URL or a local file and may hold any number of keys; only keys whose primary
 * fingerprint equals a pin (or that own a subkey with that fingerprint, e.g. Gentoo's signing
 * subkey) are kept, so where the key file came from does not matter: a swapped key file is
 * simply refused.
 */
export interface PinnedKey {
  fingerprint: string;
  /** Where the key material came from (URL or path), for messages. */
  from: string;
  key: PublicKey;
}

/** Keeps the keys of `material` that match `pin`; throws naming what was found instead. */
export async function selectPinned(material: Uint8Array, pinText: string, from: string): Promise<PinnedKey> {
  const pin = normaliseFingerprint(pinText);
  if (!/^[0-9A-F]{40}$|^[0-9A-F]{64}$/.test(pin)) {
    throw new UserError(`pinned fingerprint "${pinText}" is not a full 40-hex-digit fingerprint`);
  }
  const keys = await readPublicKeys(material, `key ${from}`);
  for (const key of keys) {
    if (fingerprintOf(key) === pin) return { fingerprint: pin, from, key };
    for (const sub of key.getSubkeys()) {
      if (sub.getFingerprint().toUpperCase() === pin) return { fingerprint: fingerprintOf(key), from, key };
    }
  }
  const found = keys.map((k) => fingerprintOf(k)).join(", ");
  throw new UserError(
    `key ${from} has fingerprint ${found}, but the recipe pins ${pin}: refusing to trust it`,
    ExitCode.verification,
  );
}

export interface SignatureCheck {
  /** Primary fingerprint of the pinned key that made the signature. */
  fingerprint: string;
  /** Key id that signed (a subkey's, when a signing subkey was used). */
  keyId: string;
}

async function firstGoodSignature(
  signatures: openpgp.VerifyMessageResult["signatures"],
  pinned: PinnedKey[],
  what: string,
): Promise<SignatureCheck> {
  for (const sig of signatures) {
    try {
      await sig.verified;
    } catch (err) {
      const message = (err as Error).message;
      if (/Could not find signing key/i.test(message)) continue;
      throw new UserError(`${what}: BAD signature (${message})`, ExitCode.verification);
    }
    const owner = pinned.find((p) => p.key.getKeys(sig.keyID).length > 0);
    if (owner) return { fingerprint: owner.fingerprint, keyId: sig.keyID.toHex().toUpperCase() };
  }
  const ids = signatures.map((s) => s.keyID.toHex().toUpperCase()).join(", ");
  throw new UserError(
    `${what}: signed by key ${ids || "(none)"}, not by the pinned ${pinned.map((p) => p.fingerprint).join(" or ")}`,
    ExitCode.verification,
  );
}

/**
 * Verifies a clearsigned document and returns ONLY the signed text: anything around the
 * signed block (which an attacker could add) never reaches a parser.
 */
export async function verifyClearsigned(
  document: string,
  pinned: PinnedKey[],
  what: string,
): Promise<{ text: string } & SignatureCheck> {
  let message: openpgp.CleartextMessage;
  try {
    message = await openpgp.readCleartextMessage({ cleartextMessage: document });
  } catch (err) {
    throw new UserError(
      `${what}: not a clearsigned OpenPGP document (${(err as Error).message})`,
      ExitCode.verification,
    );
  }
  const result = await openpgp.verify({
    message,
    verificationKeys: pinned.map((p) => p.key),
    expectSigned: false,
  });
  const check = await firstGoodSignature(result.signatures, pinned, what);
  return { text: message.getText(), ...check };
}

/** Verifies a detached signature (armoured or binary) over a file's bytes, streamed. */
export async function verifyDetachedStream(
  signatureBytes: Uint8Array,
  data: ReadableStream<Uint8Array>,
  pinned: PinnedKey[],
  what: string,
): Promise<SignatureCheck> {
  let signature: openpgp.Signature;
  try {
    const text = Buffer.from(signatureBytes).toString("latin1");
    signature = text.includes("-----BEGIN PGP SIGNATURE-----")
      ? await openpgp.readSignature({ armoredSignature: text })
      : await openpgp.readSignature({ binarySignature: signatureBytes });
  } catch (err) {
    throw new UserError(
      `${what}: not an OpenPGP signature (${(err as Error).message})`,
      ExitCode.verification,
    );
  }
  const message = await openpgp.createMessage({ binary: data });
  const result = await openpgp.verify({
    message,
    signature,
    verificationKeys: pinned.map((p) => p.key),
    expectSigned: false,
    format: "binary",
  });
  // The data stream must be consumed for the streamed hash to complete.
  const reader = (result.data as unknown as ReadableStream<Uint8Array>).getReader();
  while (!(await reader.read()).done) {
    /* drain */
  }
  return firstGoodSignature(result.signatures, pinned, what);
}
