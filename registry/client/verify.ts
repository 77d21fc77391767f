import { ExitCode, UserError } from "../../common/errors.js";
import { type PublicKey, readPublicKeysFile } from "../../common/signing/keys.js";
import { verifyDetached } from "../../common/signing/signatures.js";
import type { FetchedManifest } from "./pull.js";

/**
 * Host-side trust (`templar pull`): the manifest must carry a detached signature by a key in the
 * host's keyring. The manifest names every artifact's sha256, which pull always checks, so a
 * good manifest signature vouches for the bytes that land in the template cache.
 */
export interface VerifyOptions {
  keyring: string;
  /** Accept templates without a signature (a signature that is present must still verify). */
  allowUnsigned: boolean;
}

export function manifestVerifier(
  options: VerifyOptions,
): (fetched: FetchedManifest, signature: Buffer | null) => Promise<string> {
  let keys: Promise<PublicKey[]> | null = null;
  return async ({ manifest, bytes }, signature) => {
    const what = `${manifest.name}@${manifest.version}`;
    if (!signature) {
      if (options.allowUnsigned) return "unsigned (allowed by --allow-unsigned)";
      throw new UserError(
        `${what} is not signed; refusing it (pass --allow-unsigned to accept unsigned templates)`,
        ExitCode.verification,
      );
    }
    keys ??= readPublicKeysFile(options.keyring).catch((err: Error) => {
      throw new UserError(
        `${err.message}: cannot check the signature of ${what} (put the maintainers' public keys there or pass --keyring FILE)`,
        ExitCode.verification,
      );
    });
    let trusted: PublicKey[];
    try {
      trusted = await keys;
    } catch (err) {
      if (options.allowUnsigned) return "signature not checked (no keyring; --allow-unsigned)";
      throw err;
    }
    const { fingerprint } = await verifyDetached(signature, bytes, trusted, `${what}: manifest signature`);
    return `signed by ${fingerprint}`;
  };
}
