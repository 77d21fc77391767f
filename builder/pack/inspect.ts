import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { sha256File } from "../../common/digest.js";
import { ExitCode, UserError } from "../../common/errors.js";
import { FORMATS, type Format, isFormat } from "../../common/formats.js";
import { type Manifest, parseManifest } from "../../common/manifest.js";
import { artifactFileName, manifestFileName } from "../../common/manifest-files.js";
import { decompressFile, sniffFormat } from "./decompress.js";
import { readTar } from "./tar-reader.js";

/** What reading one compressed template gives. */
export interface ArtifactFacts {
  path: string;
  format: Format;
  size: number;
  sha256: string;
  tarSha256: string;
  tarSize: number;
  entries: number;
}

/**
 * Decompresses a template once: hashes the compressed file and the tar stream and counts tar
 * entries. A file that does not decompress or parse throws a UserError with exit code 3.
 */
export async function readArtifact(path: string, inProcessOnly = false): Promise<ArtifactFacts> {
  const format = (await sniffFormat(path)) ?? FORMATS.find((f) => path.endsWith(`.${f}`));
  if (!format) {
    throw new UserError(`${path} is not a template: neither zstd, gzip nor xz data`, ExitCode.verification);
  }
  const fileDigest = sha256File(path);
  const tarHash = createHash("sha256");
  let tarSize = 0;
  const stream = decompressFile(path, format, inProcessOnly);
  async function* hashed(): AsyncGenerator<Buffer> {
    for await (const chunk of stream) {
      tarHash.update(chunk);
      tarSize += chunk.length;
      yield chunk;
    }
  }
  const source = hashed();
  let entries = 0;
  try {
    for await (const _entry of readTar({ [Symbol.asyncIterator]: () => source })) entries++;
    // Whatever follows the end-of-archive marker still belongs to the tar's bytes and digest.
    for (let next = await source.next(); !next.done; next = await source.next()) {}
  } catch (err) {
    if (err instanceof UserError && err.exitCode === ExitCode.verification && !err.message.startsWith(path)) {
      throw new UserError(`${path} is corrupt or truncated: ${err.message}`, ExitCode.verification);
    }
    throw err;
  }
  const { hex, size } = await fileDigest;
  return { path, format, size, sha256: hex, tarSha256: tarHash.digest("hex"), tarSize, entries };
}

export interface ArtifactCheck {
  format: Format;
  path: string;
  status: "ok" | "missing" | "mismatch";
  problems: string[];
  facts?: ArtifactFacts;
}

export interface InspectReport {
  manifestPath: string | null;
  manifest: Manifest | null;
  artifacts: ArtifactCheck[];
  /** Every problem found; empty means everything present verified. */
  problems: string[];
}

async function exists(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

async function loadManifest(path: string): Promise<Manifest> {
  try {
    return parseManifest(await readFile(path), path);
  } catch (err) {
    if (err instanceof UserError) throw new UserError(err.message, ExitCode.verification);
    throw new UserError(`cannot read manifest ${path}: ${(err as NodeJS.ErrnoException).code}`);
  }
}

function compare(manifest: Manifest, facts: ArtifactFacts): string[] {
  const problems: string[] = [];
  const entry = manifest.artifacts.find((a) => a.format === facts.format);
  const where = basename(facts.path);
  if (!entry) return [`${where}: the manifest lists no ${facts.format} artifact`];
  if (entry.size !== facts.size) problems.push(`${where}: size ${facts.size}, manifest says ${entry.size}`);
  if (entry.digest !== `sha256:${facts.sha256}`) {
    problems.push(`${where}: digest sha256:${facts.sha256} does not match the manifest's ${entry.digest}`);
  }
  if (manifest.rootfs.tarSha256 !== facts.tarSha256) {
    problems.push(
      `${where}: tar sha256 ${facts.tarSha256} does not match rootfs.tarSha256 ${manifest.rootfs.tarSha256}`,
    );
  }
  if (manifest.rootfs.tarSize !== facts.tarSize) {
    problems.push(`${where}: tar size ${facts.tarSize}, manifest says ${manifest.rootfs.tarSize}`);
  }
  if (manifest.rootfs.entries !== facts.entries) {
    problems.push(`${where}: ${facts.entries} tar entries, manifest says ${manifest.rootfs.entries}`);
  }
  return problems;
}

async function check(
  manifest: Manifest | null,
  path: string,
  format: Format,
  inProcessOnly: boolean,
): Promise<ArtifactCheck> {
  if (!(await exists(path))) return { format, path, status: "missing", problems: [] };
  const facts = await readArtifact(path, inProcessOnly);
  const problems = manifest ? compare(manifest, facts) : [];
  return { format: facts.format, path, status: problems.length ? "mismatch" : "ok", problems, facts };
}

/** Inspects a manifest (and the artifacts beside it) or a template file (and its manifest). */
export async function inspectPath(path: string, inProcessOnly = false): Promise<InspectReport> {
  if (!(await exists(path)))
    throw new UserError(`${path} does not exist or is not a file`, ExitCode.notFound);
  if (path.endsWith(".manifest.json")) {
    const manifest = await loadManifest(path);
    const dir = dirname(path);
    const artifacts: ArtifactCheck[] = [];
    // The host metadata tarballs are not the root filesystem: the signature and push check them.
    for (const a of manifest.artifacts) {
      if (!isFormat(a.format)) continue;
      artifacts.push(
        await check(
          manifest,
          join(dir, artifactFileName(manifest.name, manifest.version, a.format)),
          a.format,
          inProcessOnly,
        ),
      );
    }
    return { manifestPath: path, manifest, artifacts, problems: artifacts.flatMap((a) => a.problems) };
  }
  const base = basename(path);
  const suffix = FORMATS.find((f) => base.endsWith(`.${f}`));
  const stem = suffix ? base.slice(0, -(suffix.length + 1)) : base;
  const manifestPath = join(dirname(path), `${stem}.manifest.json`);
  const manifest = (await exists(manifestPath)) ? await loadManifest(manifestPath) : null;
  if (manifest && manifestFileName(manifest.name, manifest.version) !== basename(manifestPath)) {
    throw new UserError(
      `${manifestPath} describes ${manifest.name} ${manifest.version}, not ${stem}`,
      ExitCode.verification,
    );
  }
  const result = await check(manifest, path, suffix ?? "tar.gz", inProcessOnly);
  return {
    manifestPath: manifest ? manifestPath : null,
    manifest,
    artifacts: [result],
    problems: result.problems,
  };
}
