import { createReadStream } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { resolve } from "node:path";
import { Readable } from "node:stream";
import type { z } from "zod";
import { sha256Hex } from "../../common/digest.js";
import { ExitCode, UserError } from "../../common/errors.js";
import type { SourceInput } from "../../common/manifest.js";
import { type ChecksumTable, checkFile, digestsFor, type FileDigests, parseChecksums } from "./checksums.js";
import { type ArchiveConfig, expand, kinds, type Placeholders } from "./config.js";
import { downloadToCache, fetchSmall } from "./download.js";
import { type PinnedKey, selectPinned, verifyClearsigned, verifyDetachedStream } from "./pgp.js";

/**
 * Finds, downloads and verifies an archive source's artifact. Order matters: keys are pinned
 * first, then the index and checksum file are verified, then the artifact is downloaded and
 * checked. Only a verified artifact path is returned; nothing is unpacked here.
 */
export interface AcquireOptions {
  cacheDir: string;
  /** Directory of the recipe: `file:` key paths are relative to it. */
  recipeDir: string;
  values: Omit<Placeholders, "artifact">;
  signal?: AbortSignal;
  log: (line: string) => void;
  progress?: boolean;
}

export interface Acquired {
  path: string;
  artifactUrl: string;
  sha256: string;
  /** How the artifact was trusted: "pgp:<fingerprint>", "pinned-sha256" or "https". */
  verified: string;
  inputs: z.infer<typeof SourceInput>[];
  fetchedBytes: number;
  fromCache: boolean;
}

type Input = z.infer<typeof SourceInput>;

function isHttps(url: string): boolean {
  return url.startsWith("https://");
}

export async function acquire(config: ArchiveConfig, options: AcquireOptions): Promise<Acquired> {
  const values: Placeholders = { ...options.values, ...(config.base ? { base: config.base } : {}) };
  const at = (template: string, what: string) => {
    try {
      return expand(template, values, what);
    } catch (err) {
      throw new UserError(`source.${what}: ${(err as Error).message}`);
    }
  };
  const inputs: Input[] = [];
  const signed = config.signature ? kinds(config.signature.kind) : [];
  const pinned = config.signature ? await loadKeys(config.signature.keys, options, at, inputs) : [];
  const pgp = (check: { fingerprint: string }) => `pgp:${check.fingerprint}`;

  // 1. Find the artifact.
  let artifactUrl: string;
  let listedSize: number | undefined;
  let checksums: ChecksumTable | undefined;
  let checksumsUrl: string | undefined;
  const readChecksums = async () => {
    if (!config.checksums || checksums) return;
    checksumsUrl = at(config.checksums.url, "checksums.url");
    const bytes = await fetchSmall(checksumsUrl, options.signal);
    let text = bytes.toString("utf8");
    const input: Input = { uri: checksumsUrl, sha256: sha256Hex(bytes) };
    if (signed.includes("clearsigned")) {
      const check = await verifyClearsigned(text, pinned, `checksum file ${checksumsUrl}`);
      text = check.text;
      input.verified = pgp(check);
    }
    checksums = parseChecksums(text, config.checksums.format, `checksum file ${checksumsUrl}`);
    inputs.push(input);
  };
  if (config.url) {
    artifactUrl = at(config.url, "url");
  } else if (config.index) {
    const indexUrl = at(config.index.url, "index.url");
    const bytes = await fetchSmall(indexUrl, options.signal);
    let text = bytes.toString("utf8");
    const input: Input = { uri: indexUrl, sha256: sha256Hex(bytes) };
    if (signed.includes("clearsigned")) {
      const check = await verifyClearsigned(text, pinned, `index ${indexUrl}`);
      text = check.text;
      input.verified = pgp(check);
    }
    inputs.push(input);
    const found = parseGentooLatest(text, indexUrl);
    artifactUrl = new URL(found.path, indexUrl).toString();
    listedSize = found.size;
  } else {
    const regex = new RegExp(`^(?:${at(config.pattern!.regex, "pattern.regex")})$`);
    let names: string[];
    let baseUrl: string;
    if (config.pattern!.listing) {
      baseUrl = at(config.pattern!.listing, "pattern.listing");
      names = hrefs((await fetchSmall(baseUrl, options.signal)).toString("utf8"));
    } else {
      await readChecksums();
      baseUrl = checksumsUrl!;
      names = [...checksums!.keys()];
    }
    const newest = names
      .filter((n) => regex.test(n))
      .sort()
      .pop();
    if (!newest) throw new UserError(`source.pattern: no file matching ${regex.source} at ${baseUrl}`);
    artifactUrl = new URL(newest, baseUrl).toString();
  }
  values.artifact = artifactUrl;
  await readChecksums();

  // 2. Decide the trust before downloading anything big.
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
  const name = decodeURIComponent(new URL(artifactUrl).pathname.split("/").pop()!);
  const expected: FileDigests | undefined = checksums
    ? digestsFor(checksums, name, `checksum file ${checksumsUrl}`)
    : undefined;
  if (expected && listedSize !== undefined && expected.size === undefined) expected.size = listedSize;
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

  // 3. Download (or reuse) and verify.
  const downloaded = await downloadToCache(artifactUrl, {
    cacheDir: options.cacheDir,
    stillValid:
      expected || config.sha256
        ? (path) =>
            check(path).then(
              () => true,
              () => false,
            )
        : undefined,
    log: options.log,
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.progress !== undefined ? { progress: options.progress } : {}),
  });
  let sha256: string;
  try {
    sha256 = await check(downloaded.path);
    if (signed.includes("detached")) {
      const sigUrl = at(config.signature!.url!, "signature.url");
      const sigBytes = await fetchSmall(sigUrl, options.signal);
      const stream = Readable.toWeb(
        createReadStream(downloaded.path, { highWaterMark: 1 << 20 }),
      ) as ReadableStream<Uint8Array>;
      const result = await verifyDetachedStream(sigBytes, stream, pinned, `${name} (signature ${sigUrl})`);
      inputs.push({ uri: sigUrl, sha256: sha256Hex(sigBytes), verified: pgp(result) });
      verified = pgp(result);
    } else if (verified === "pgp") {
      // The artifact is covered by the signed checksum file, else (index-only signing) by the pin.
      const signedChecksums = inputs.find((i) => i.uri === checksumsUrl && i.verified?.startsWith("pgp:"));
      verified = signedChecksums?.verified ?? "pinned-sha256";
    }
  } catch (err) {
    await rm(downloaded.path, { force: true }); // never keep a file that failed its check
    throw err;
  }
  inputs.unshift({ uri: artifactUrl, sha256, verified });
  return {
    path: downloaded.path,
    artifactUrl,
    sha256,
    verified,
    inputs,
    fetchedBytes: downloaded.fetched,
    fromCache: downloaded.fromCache,
  };
}

async function loadKeys(
  keys: NonNullable<ArchiveConfig["signature"]>["keys"],
  options: AcquireOptions,
  at: (t: string, what: string) => string,
  inputs: Input[],
): Promise<PinnedKey[]> {
  const out: PinnedKey[] = [];
  for (const key of keys) {
    const from = key.url ? at(key.url, "signature.keys.url") : resolve(options.recipeDir, key.file!);
    const material = key.url
      ? await fetchSmall(from, options.signal)
      : await readFile(from).catch(() => {
          throw new UserError(`signature key file ${from}: cannot be read`);
        });
    const pinned = await selectPinned(material, key.fingerprint, from);
    out.push(pinned);
    inputs.push({
      uri: key.url ? from : `file:${from}`,
      sha256: sha256Hex(material),
      verified: `fingerprint:${pinned.fingerprint}`,
    });
  }
  return out;
}

/** Gentoo's latest-stage3-*.txt (signed text): `<dir>/<file> <size>` after `#` comments. */
export function parseGentooLatest(text: string, where: string): { path: string; size?: number } {
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const m = /^(\S+)(?:\s+(\d+))?$/.exec(line);
    if (!m || m[1]!.includes("..") || m[1]!.startsWith("/") || /^[a-z]+:/i.test(m[1]!)) break;
    return m[2] ? { path: m[1]!, size: Number(m[2]) } : { path: m[1]! };
  }
  throw new UserError(`index ${where}: no "<path> <size>" line found`);
}

/** File names linked from a directory listing page (Apache/nginx autoindex). */
function hrefs(html: string): string[] {
  const names = new Set<string>();
  for (const m of html.matchAll(/href="([^"?#/]+)"/g)) names.add(decodeURIComponent(m[1]!));
  return [...names];
}
