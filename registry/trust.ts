import { readFile, stat } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import type { Readable } from "node:stream";
import { CodedError } from "../common/error-codes.js";
import { errorMessage, UserError } from "../common/errors.js";
import {
  fingerprintOf,
  normaliseFingerprint,
  type PrivateKey,
  type PublicKey,
  readPrivateKeyFile,
  readPublicKeysFile,
} from "../common/signing/keys.js";
import { signBytes, verifyDetached, verifyDetachedStream } from "../common/signing/signatures.js";
import type { RegistryConfig } from "./config.js";
import type { Ctx } from "./http/context.js";
import { deps } from "./http/context.js";

/**
 * The registry's keys (config `pushPolicy`, `indexKey`): who may publish, and the key that
 * signs aplinfo.dat. Key files are read on first use and again when they change (mtime/size),
 * like the config itself, so an operator can rotate keys without a restart.
 */
const fileCache = new Map<string, { stamp: string; value: Promise<unknown> }>();

async function cached<T>(path: string, load: () => Promise<T>): Promise<T> {
  const st = await stat(path).catch(() => null);
  const stamp = st ? `${st.mtimeMs}:${st.size}:${st.ino}` : "absent";
  const hit = fileCache.get(path);
  if (hit && hit.stamp === stamp) return hit.value as Promise<T>;
  const value = load();
  fileCache.set(path, { stamp, value });
  value.catch(() => fileCache.delete(path)); // a broken file is read again next time
  return value;
}

/** Paths in the config are relative to the config file's directory. */
function configRelative(c: Ctx, path: string): string {
  const configPath = deps(c).config.path;
  return resolve(configPath ? dirname(configPath) : process.cwd(), path);
}

/** The keys allowed to sign pushes, or null when the registry has no push policy. */
export async function pushPolicyKeys(c: Ctx, config: RegistryConfig): Promise<PublicKey[] | null> {
  const policy = config.pushPolicy;
  if (!policy) return null;
  const keys: PublicKey[] = [];
  for (const file of policy.keyrings) {
    const path = configRelative(c, file);
    try {
      keys.push(...(await cached(path, () => readPublicKeysFile(path))));
    } catch (err) {
      // The policy cannot be applied: refuse rather than accept unchecked pushes.
      throw new CodedError("POLICY_UNAVAILABLE", `push policy: ${errorMessage(err)}`);
    }
  }
  if (policy.fingerprints.length === 0) return keys;
  const wanted = new Set(policy.fingerprints.map(normaliseFingerprint));
  return keys.filter((k) => wanted.has(fingerprintOf(k)));
}

/**
 * Push policy for a manifest: with a policy configured, a manifest is accepted only with a
 * detached signature that verifies against one of the trusted keys (403 otherwise, before
 * anything is stored). Without a policy, anything goes (the hosts verify).
 */
export async function enforceManifestPolicy(
  c: Ctx,
  manifest: Buffer,
  signature: Buffer | null,
): Promise<void> {
  const trusted = await pushPolicyKeys(c, c.get("config"));
  if (!trusted) return;
  if (!signature) {
    throw new CodedError(
      "SIGNATURE_REQUIRED",
      "this registry only accepts signed manifests: sign with --sign-key and push the .asc beside the manifest",
    );
  }
  try {
    await verifyDetached(signature, manifest, trusted, "manifest");
  } catch (err) {
    if (err instanceof UserError) throw new CodedError("SIGNATURE_UNTRUSTED", err.message);
    throw err;
  }
}

/** Push policy for an artifact signature: it must verify over the blob's bytes (streamed). */
export async function enforceArtifactPolicy(
  c: Ctx,
  signature: Buffer,
  blob: () => Promise<Readable>,
  what: string,
): Promise<void> {
  const trusted = await pushPolicyKeys(c, c.get("config"));
  if (!trusted) return;
  const problem = await verifyStream(signature, await blob(), trusted);
  if (problem) throw new CodedError("SIGNATURE_UNTRUSTED", `${what}: ${problem}`);
}

/** Verifies a detached signature over a stream; returns null when good, else what is wrong. */
export async function verifyStream(
  armoredSignature: Buffer,
  data: Readable,
  trusted: PublicKey[],
): Promise<string | null> {
  const result = await verifyDetachedStream(armoredSignature, data, trusted);
  if (!("problem" in result)) return null;
  return result.problem.replace(/which is not in the keyring$/, "which the push policy does not trust");
}

/** The registry's index key (config `indexKey`), or null when none is configured. */
export async function indexKey(c: Ctx, config: RegistryConfig): Promise<PrivateKey | null> {
  const entry = config.indexKey;
  if (!entry) return null;
  const path = configRelative(c, entry.file);
  try {
    return await cached(path, async () => {
      const passphrase = entry.passphraseFile
        ? (await readFile(configRelative(c, entry.passphraseFile), "utf8")).replace(/\r?\n$/, "")
        : deps(c).indexPassphrase;
      return readPrivateKeyFile(path, passphrase);
    });
  } catch (err) {
    throw new CodedError("INDEX_KEY_UNAVAILABLE", `index key: ${errorMessage(err)}`);
  }
}

/** Signatures over generated indexes, by content: the same index is signed once. */
const signatureCache = new Map<string, string>();

export async function signIndex(key: PrivateKey, text: string, contentId: string): Promise<string> {
  const id = `${fingerprintOf(key)}:${contentId}`;
  const hit = signatureCache.get(id);
  if (hit) return hit;
  const signature = await signBytes(key, Buffer.from(text, "utf8"));
  if (signatureCache.size > 64) signatureCache.clear();
  signatureCache.set(id, signature);
  return signature;
}
