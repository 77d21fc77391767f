import { readFile } from "node:fs/promises";
import * as openpgp from "openpgp";
import { ExitCode, UserError } from "../errors.js";

/**
 * OpenPGP key handling shared by the builder (signing), the registry (its index key, push
 * policy) and hosts (trusted keyrings). Keys are v4 Ed25519 (EdDSA "legacy"), which stock gpg 2.2
 * and sqv verify; openpgp.js v6 keys would not verify on Debian 12's gpg.
 */
export type PublicKey = openpgp.PublicKey;
export type PrivateKey = openpgp.PrivateKey;

export function fingerprintOf(key: openpgp.Key): string {
  return key.getFingerprint().toUpperCase();
}

/** Normalises a fingerprint as people write it ("1234 ABCD ...", "0x...") to 40 upper-case hex. */
export function normaliseFingerprint(text: string): string {
  return text.replace(/^0x/i, "").replace(/\s+/g, "").toUpperCase();
}

export interface GeneratedKey {
  fingerprint: string;
  privateKeyArmored: string;
  publicKeyArmored: string;
}

export async function generateSigningKey(
  userId: { name: string; email?: string },
  passphrase?: string,
): Promise<GeneratedKey> {
  const { privateKey, publicKey } = await openpgp.generateKey({
    type: "ecc",
    curve: "ed25519Legacy",
    userIDs: [userId.email ? { name: userId.name, email: userId.email } : { name: userId.name }],
    format: "armored",
    ...(passphrase ? { passphrase } : {}),
  });
  const key = await openpgp.readKey({ armoredKey: publicKey });
  return { fingerprint: fingerprintOf(key), privateKeyArmored: privateKey, publicKeyArmored: publicKey };
}

/** Reads an armoured secret key, unlocking it with the passphrase when it is protected. */
export async function readPrivateKeyFile(path: string, passphrase?: string): Promise<PrivateKey> {
  const text = await readKeyText(path, "signing key");
  let key: PrivateKey;
  try {
    key = await openpgp.readPrivateKey({ armoredKey: text });
  } catch (err) {
    throw new UserError(
      `signing key ${path}: not an armoured OpenPGP secret key (${(err as Error).message})`,
    );
  }
  if (key.isDecrypted()) return key;
  if (!passphrase) {
    throw new UserError(`signing key ${path} is protected: set TEMPLAR_SIGN_PASSPHRASE or --passphrase-file`);
  }
  try {
    return await openpgp.decryptKey({ privateKey: key, passphrase });
  } catch {
    throw new UserError(`signing key ${path}: wrong passphrase`);
  }
}

/**
 * Reads public keys from a keyring file: armoured (one or several blocks) or binary (what
 * `gpg --export` and `gpg --dearmor` write). Secret keys in it count by their public part.
 */
export async function readPublicKeysFile(path: string): Promise<PublicKey[]> {
  const data = await readFile(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") throw new UserError(`keyring ${path}: no such file`, ExitCode.notFound);
    throw new UserError(`keyring ${path}: ${err.message}`);
  });
  return readPublicKeys(data, `keyring ${path}`);
}

export async function readPublicKeys(data: Uint8Array, where: string): Promise<PublicKey[]> {
  const text = Buffer.from(data).toString("latin1");
  try {
    const keys: openpgp.Key[] = [];
    if (text.includes("-----BEGIN PGP")) {
      const blocks =
        text.match(/-----BEGIN PGP (PUBLIC|PRIVATE) KEY BLOCK-----[\s\S]*?-----END PGP \1 KEY BLOCK-----/g) ??
        [];
      for (const block of blocks) keys.push(...(await openpgp.readKeys({ armoredKeys: block })));
    } else {
      keys.push(...(await openpgp.readKeys({ binaryKeys: data })));
    }
    if (keys.length === 0) throw new Error("no keys found");
    return keys.map((k) => (k.isPrivate() ? k.toPublic() : (k as PublicKey)));
  } catch (err) {
    throw new UserError(`${where}: not an OpenPGP keyring (${(err as Error).message})`);
  }
}

async function readKeyText(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new UserError(`${what} ${path}: no such file`, ExitCode.notFound);
    throw new UserError(`${what} ${path}: ${(err as Error).message}`);
  }
}
