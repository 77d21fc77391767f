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
  /**
   * Accept templates without a signature. It does not weaken anything else: a signature that is
   * present must still verify against the keyring, so the keyring is needed for it too.
   */
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
    // A signature that cannot be checked is not treated as absent, --allow-unsigned or not:
    // otherwise a host without its keyring would take whatever a registry signs with any key.
    keys ??= readPublicKeysFile(options.keyring).catch((err: UserError) => {
      const missing = err.exitCode === ExitCode.notFound;
      throw new UserError(
        `${err.message}: cannot check the signature of ${what} (put the maintainers' public keys there or pass --keyring FILE)`,
        missing ? ExitCode.notFound : ExitCode.verification,
      );
    });
    const { fingerprint, userId } = await verifyDetached(
      signature,
      bytes,
      await keys,
      `${what}: manifest signature`,
    );
    return `signed by ${fingerprint}${userId ? ` (${userId})` : ""}`;
  };
}
