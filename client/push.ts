import { readdir, readFile, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { ErrorCode } from "../common/error-codes.js";
import { ExitCode, UserError } from "../common/errors.js";
import { type Artifact, MAX_MANIFEST_BYTES, type Manifest, parseManifest } from "../common/manifest.js";
import { artifactFileName } from "../common/manifest-files.js";
import { type RegistryClient, RegistryError, templatePath } from "./http.js";
import { uploadBlob } from "./upload.js";

/** One manifest found on disk with the artifact files next to it. */
export interface LocalTemplate {
  manifestFile: string;
  bytes: Buffer;
  manifest: Manifest;
  artifacts: { artifact: Artifact; file: string; signature: string | null }[];
  /** `<manifest>.asc` when present. */
  signature: string | null;
}

export interface PushResult {
  name: string;
  version: string;
  /** Blobs uploaded (the rest were already in the registry). */
  uploaded: number;
  uploadedBytes: number;
  /** The registry already had this exact manifest: nothing was sent. */
  unchanged: boolean;
  /** Things the user should know (signatures not sent...), one line each. */
  notes: string[];
}

export interface PushOptions {
  onProgress?: (sent: number, total: number, note: string) => void;
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => null))?.isFile() ?? false;
}

/** Finds the manifests to push: the file itself, or every `*.manifest.json` in a directory. */
export async function findManifests(input: string): Promise<string[]> {
  const info = await stat(input).catch(() => null);
  if (!info) throw new UserError(`push: ${input}: no such file or directory`, ExitCode.notFound);
  if (info.isFile()) return [input];
  const files = (await readdir(input)).filter((f) => f.endsWith(".manifest.json")).sort();
  if (files.length === 0) {
    throw new UserError(
      `push: ${input}: no *.manifest.json in this directory (run templar build or pack first)`,
      4,
    );
  }
  return files.map((f) => join(input, f));
}

/** Reads and validates a manifest and checks that its artifact files are there with the right sizes. */
export async function loadLocalTemplate(manifestFile: string): Promise<LocalTemplate> {
  const bytes = await readFile(manifestFile);
  if (bytes.length > MAX_MANIFEST_BYTES)
    throw new UserError(`${manifestFile}: manifest is larger than 1 MiB`);
  const manifest = parseManifest(bytes, manifestFile);
  const dir = dirname(manifestFile);
  const artifacts: LocalTemplate["artifacts"] = [];
  for (const artifact of manifest.artifacts) {
    const file = join(dir, artifactFileName(manifest.name, manifest.version, artifact.format));
    const info = await stat(file).catch(() => null);
    if (!info?.isFile()) {
      throw new UserError(
        `${manifestFile}: names a ${artifact.format} artifact, but ${basename(file)} is not next to it`,
        ExitCode.notFound,
      );
    }
    if (info.size !== artifact.size) {
      throw new UserError(
        `${file}: ${info.size} bytes, the manifest says ${artifact.size} (rebuild or re-pack)`,
        ExitCode.verification,
      );
    }
    artifacts.push({ artifact, file, signature: (await exists(`${file}.asc`)) ? `${file}.asc` : null });
  }
  const signature = (await exists(`${manifestFile}.asc`)) ? `${manifestFile}.asc` : null;
  return { manifestFile, bytes, manifest, artifacts, signature };
}

/**
 * Pushes one template: blobs the registry lacks (HEAD first), then the manifest. Pushing the
 * same thing again is a no-op; a version that exists with other bytes is refused before any
 * upload, as the registry would refuse its manifest with 409 afterwards anyway.
 */
export async function pushTemplate(
  client: RegistryClient,
  local: LocalTemplate,
  options: PushOptions = {},
): Promise<PushResult> {
  const { manifest, bytes } = local;
  const what = `push ${manifest.name}@${manifest.version}`;
  const versionPath = templatePath(manifest.name, manifest.version);
  const result: PushResult = {
    name: manifest.name,
    version: manifest.version,
    uploaded: 0,
    uploadedBytes: 0,
    unchanged: false,
    notes: [],
  };

  // Already there? (Needs pull access; without it we go on and let the PUT decide.)
  const current = await client.request("GET", versionPath, {
    what,
    idempotent: true,
    accept: [401, 403, 404],
  });
  if (current.ok) {
    const have = await current.buffer(MAX_MANIFEST_BYTES, `${what}: the registry's manifest`);
    if (have.equals(bytes)) {
      // Signatures made after an earlier push still go up (the registry keeps identical ones).
      await pushSignatures(client, local, versionPath, what);
      return { ...result, unchanged: true };
    }
    throw new UserError(
      `${what}: the registry already has ${manifest.version} with other content; versions are immutable (bump the version)`,
    );
  }
  current.discard();

  // The manifest's signature travels with it, so a registry with a push policy can refuse an
  // unsigned or untrusted manifest before storing anything.
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (local.signature) headers["x-template-signature"] = (await readFile(local.signature)).toString("base64");
  // A registry's online GC may take an old unreferenced blob that we found there and did not
  // upload (it answers 503 GC_IN_PROGRESS, then BLOB_UNKNOWN): one more round uploads it again.
  for (let round = 1; ; round++) {
    await uploadMissingBlobs(client, local, what, result, options);
    try {
      const put = await client.request("PUT", versionPath, { what, body: bytes, idempotent: true, headers });
      put.discard();
      break;
    } catch (err) {
      if (round >= 2 || !(err instanceof RegistryError) || err.code !== ("BLOB_UNKNOWN" satisfies ErrorCode))
        throw err;
    }
  }
  result.notes = await pushSignatures(client, local, versionPath, what);
  return result;
}

/** Uploads the artifacts the registry lacks (HEAD first), adding to `result`'s counts. */
async function uploadMissingBlobs(
  client: RegistryClient,
  local: LocalTemplate,
  what: string,
  result: PushResult,
  options: PushOptions,
): Promise<void> {
  const missing: LocalTemplate["artifacts"] = [];
  for (const entry of local.artifacts) {
    const head = await client.request("HEAD", `v1/blobs/${entry.artifact.digest}`, {
      what,
      idempotent: true,
      // A push-only token may not read blobs: then we cannot know, and upload (harmless if present).
      accept: [401, 403, 404],
    });
    head.discard();
    if (head.status !== 200) missing.push(entry);
  }
  const total = missing.reduce((sum, e) => sum + e.artifact.size, 0);
  let done = 0;
  for (const entry of missing) {
    await uploadBlob(client, {
      file: entry.file,
      size: entry.artifact.size,
      digest: entry.artifact.digest,
      what: `${what} (${basename(entry.file)})`,
      onProgress: (sent) => options.onProgress?.(done + sent, total, basename(entry.file)),
    });
    done += entry.artifact.size;
    result.uploaded++;
  }
  result.uploadedBytes += total;
}

/**
 * Signatures made by `templar build|pack --sign-key` sit next to the files they sign. The
 * manifest's goes to PUT `{version}/signature` (create-if-absent on the registry; a no-op when
 * it came with the manifest), each artifact's to PUT `{version}/signature/{format}` (what
 * vztmpl-dl fetches as `/precreated/<file>.asc`).
 */
async function pushSignatures(
  client: RegistryClient,
  local: LocalTemplate,
  versionPath: string,
  what: string,
): Promise<string[]> {
  const notes: string[] = [];
  const send = async (path: string, file: string) => {
    const response = await client.request("PUT", path, {
      what: `${what} (${basename(file)})`,
      body: await readFile(file),
      idempotent: true,
      headers: { "content-type": "application/pgp-signature" },
    });
    response.discard();
  };
  if (local.signature) await send(`${versionPath}/signature`, local.signature);
  else notes.push(`${basename(local.manifestFile)} is not signed: hosts that verify will refuse it`);
  for (const entry of local.artifacts) {
    if (entry.signature) await send(`${versionPath}/signature/${entry.artifact.format}`, entry.signature);
  }
  return notes;
}
