import { createReadStream } from "node:fs";
import { Readable } from "node:stream";
import { sha256Hex } from "../../../common/digest.js";
import { ExitCode, UserError } from "../../../common/errors.js";
import { checkFile, digestsFor, type FileDigests } from "./checksums.js";
import type { ArchiveConfig } from "./config.js";
import { type Discovery, pgp } from "./discover.js";
import { fetchSmall } from "./download.js";
import { verifyDetachedStream } from "./pgp.js";

function isHttps(url: string): boolean {
  return url.startsWith("https://");
}

/** How a download will be trusted, decided before it starts, and the check it must pass. */
export interface TrustPlan {
  /** "pgp", "pinned-sha256" or "https": refined to "pgp:<fingerprint>" once verified. */
  verified: string;
  /** Checks a downloaded file against the checksum file and the pin; gives its sha256. */
  check(path: string): Promise<string>;
  /** Whether a cached copy can be checked without downloading again. */
  canCheckCache: boolean;
}

/**
 * Decides the trust before anything big is downloaded: signed (and covered by a signed
 * checksum file or a pin), pinned, or https with a checksum file; anything else is refused.
 */
export function planTrust(config: ArchiveConfig, found: Discovery): TrustPlan {
  const { signed, checksums, checksumsUrl, artifactUrl, name } = found;
  let verified: string;
  if (signed.length > 0 && !signed.includes("detached") && !checksums && !config.sha256) {
    throw new UserError(
      "source: a clearsigned index alone does not cover the artifact: add checksums or a pin",
    );
  }
  if (signed.length > 0) verified = "pgp";
  else if (config.sha256) verified = "pinned-sha256";
  else if (config.trust === "https") {
    const plain = [artifactUrl, checksumsUrl].filter((u): u is string => Boolean(u) && !isHttps(u!));
    if (plain.length > 0) {
      throw new UserError(
        `source: trust: https, but ${plain[0]} is plain http: refusing an unsigned download over http`,
        ExitCode.verification,
      );
    }
    if (!checksums)
      throw new UserError("source: trust: https needs a checksums file to check the download against");
    verified = "https";
  } else {
    throw new UserError(
      `source: ${artifactUrl} is neither signed nor pinned: refusing it`,
      ExitCode.verification,
    );
  }
  const expected: FileDigests | undefined = checksums
    ? digestsFor(checksums, name, `checksum file ${checksumsUrl}`)
    : undefined;
  if (expected && found.listedSize !== undefined && expected.size === undefined)
    expected.size = found.listedSize;
  const check = async (path: string): Promise<string> => {
    let sha256 = expected ? await checkFile(path, expected, name) : undefined;
    if (config.sha256) {
      sha256 ??= await checkFile(path, { digests: { sha256: config.sha256 } }, name);
      if (sha256 !== config.sha256) {
        throw new UserError(
          `${name}: sha256 is ${sha256}, the recipe pins ${config.sha256}: refusing it`,
          ExitCode.verification,
        );
      }
    }
    if (!sha256) sha256 = await checkFile(path, { digests: {} }, name);
    return sha256;
  };

  return { verified, check, canCheckCache: Boolean(expected || config.sha256) };
}

/**
 * Verifies a downloaded artifact: its digests, then (detached signing) its signature over the
 * whole file. Gives its sha256 and how it was trusted.
 */
export async function verifyArtifact(
  config: ArchiveConfig,
  found: Discovery,
  plan: TrustPlan,
  path: string,
  signal?: AbortSignal,
): Promise<{ sha256: string; verified: string }> {
  const { signed, inputs, checksumsUrl, pinned, name, at } = found;
  let verified = plan.verified;
  const sha256 = await plan.check(path);
  if (signed.includes("detached")) {
    const sigUrl = at(config.signature!.url!, "signature.url");
    const sigBytes = await fetchSmall(sigUrl, signal);
    const stream = Readable.toWeb(
      createReadStream(path, { highWaterMark: 1 << 20 }),
    ) as ReadableStream<Uint8Array>;
    const result = await verifyDetachedStream(sigBytes, stream, pinned, `${name} (signature ${sigUrl})`);
    inputs.push({ uri: sigUrl, sha256: sha256Hex(sigBytes), verified: pgp(result) });
    verified = pgp(result);
  } else if (verified === "pgp") {
    // The artifact is covered by the signed checksum file, else (index-only signing) by the pin.
    const signedChecksums = inputs.find((i) => i.uri === checksumsUrl && i.verified?.startsWith("pgp:"));
    verified = signedChecksums?.verified ?? "pinned-sha256";
  }
  return { sha256, verified };
}
