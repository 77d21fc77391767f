import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { sha256Hex } from "../../../common/digest.js";
import { UserError } from "../../../common/errors.js";
import type { ChecksumTable } from "./checksums.js";
import { parseChecksums } from "./checksums.js";
import { type ArchiveConfig, expand, kinds, type Placeholders } from "./config.js";
import { fetchSmall } from "./download.js";
import { type PinnedKey, selectPinned, verifyClearsigned } from "./pgp.js";
import type { AcquireOptions, Input } from "./types.js";

/** What discovery found: the artifact's address, and the small verified files that name it. */
export interface Discovery {
  artifactUrl: string;
  /** The artifact's file name (the last path segment, decoded). */
  name: string;
  /** The signature kinds the recipe asks for ("clearsigned", "detached"). */
  signed: string[];
  pinned: PinnedKey[];
  checksums?: ChecksumTable;
  checksumsUrl?: string;
  /** The size an index listed for the artifact, if any. */
  listedSize?: number;
  /** Keys, index and checksum file, each with its sha256 (and how it was verified). */
  inputs: Input[];
  /** Expands a recipe template with the placeholders, `artifact` included once found. */
  at: (template: string, what: string) => string;
}

export const pgp = (check: { fingerprint: string }) => `pgp:${check.fingerprint}`;

/**
 * Finds the artifact: keys are pinned first, then the index or listing and the checksum file
 * are fetched and, where the recipe says they are signed, verified. Nothing big is downloaded.
 */
export async function discover(config: ArchiveConfig, options: AcquireOptions): Promise<Discovery> {
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

  const name = decodeURIComponent(new URL(artifactUrl).pathname.split("/").pop()!);
  return {
    artifactUrl,
    name,
    signed,
    pinned,
    inputs,
    at,
    ...(checksums ? { checksums, checksumsUrl: checksumsUrl! } : {}),
    ...(listedSize !== undefined ? { listedSize } : {}),
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
