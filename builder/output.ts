import { mkdir, mkdtemp, readFile, rename, rm, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import type { ArtifactFormat } from "../common/formats.js";
import { parseManifest } from "../common/manifest.js";
import { type Signer, signFiles } from "../common/signing/signer.js";

/** A finished template in its staging directory. */
export interface StagedOutput {
  manifestPath: string;
  files: Partial<Record<ArtifactFormat, string>>;
}

export interface PublishedOutput extends StagedOutput {
  /** The .asc files written beside the manifest and each artifact (none without a signer). */
  signatures: string[];
  /** The bill-of-materials files written beside the manifest (with `sbom`). */
  sbom: string[];
}

export interface PublishOptions {
  /** Signs the manifest and each artifact first. */
  signer?: Signer | null | undefined;
  /** Writes the manifest's SBOMs (CycloneDX and SPDX JSON) beside it. */
  sbom?: boolean | undefined;
}

/**
 * A staging directory inside `outDir`: on the same file system, so publishing is a rename, and
 * its name starts with a dot, so nothing that lists templates in `outDir` sees it.
 */
export async function makeStaging(outDir: string): Promise<string> {
  await mkdir(outDir, { recursive: true });
  return mkdtemp(join(outDir, ".templar-staging-"));
}

/**
 * Moves a staged template into `outDir`, signed and with its SBOMs first: a signing failure (a
 * wrong passphrase, a gpg agent that went away) leaves nothing in `outDir`. Artifacts and their
 * signatures go first, the SBOMs and the manifest's signature, then the manifest last: whoever
 * sees a manifest sees everything that belongs to it.
 */
export async function publishOutput(
  staged: StagedOutput,
  outDir: string,
  options: PublishOptions = {},
): Promise<PublishedOutput> {
  const { signer } = options;
  const artifacts = Object.entries(staged.files) as [ArtifactFormat, string][];
  const sbomStaged: string[] = [];
  if (options.sbom) {
    const { sbomDocuments } = await import("../common/sbom/files.js");
    const manifest = parseManifest(await readFile(staged.manifestPath), staged.manifestPath);
    for (const doc of await sbomDocuments(manifest)) {
      const path = staged.manifestPath.replace(/\.manifest\.json$/, doc.suffix);
      await writeFile(path, doc.text, { flag: "wx" });
      sbomStaged.push(path);
    }
  }
  const signed = signer
    ? await signFiles(signer, [...artifacts.map(([, path]) => path), staged.manifestPath])
    : [];
  const place = async (path: string) => {
    const target = join(outDir, basename(path));
    await rename(path, target);
    return target;
  };
  const files: Partial<Record<ArtifactFormat, string>> = {};
  for (const [format, path] of artifacts) {
    files[format] = await place(path);
    if (signer) await place(`${path}.asc`);
  }
  const signatures = signed.map((path) => join(outDir, basename(path)));
  const sbom: string[] = [];
  for (const path of sbomStaged) sbom.push(await place(path));
  if (signer) await place(`${staged.manifestPath}.asc`);
  const manifestPath = await place(staged.manifestPath);
  return { manifestPath, files, signatures, sbom };
}

export async function removeStaging(staging: string | undefined): Promise<void> {
  if (staging) await rm(staging, { recursive: true, force: true });
}
