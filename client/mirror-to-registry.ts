import { mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseDigest } from "../common/digest.js";
import { MAX_MANIFEST_BYTES } from "../common/manifest.js";
import { artifactFileName, manifestFileName } from "../common/manifest-files.js";
import { type RegistryClient, templatePath } from "./http.js";
import type { FetchBlob, MirrorTarget, SourceVersion } from "./mirror.js";
import { loadLocalTemplate, pushTemplate } from "./push.js";

/**
 * A mirror into another registry through its API, as `templar push` does it: a version is laid
 * out as `templar pack` writes it (manifest, artifacts, `.asc` files) and pushed with the same
 * code, so resumable uploads, the push policy and immutability apply unchanged. The token needs
 * `push` and `pull` on the destination (pull to see what it has). Every artifact of a version the
 * destination lacks is downloaded, also one it already has as a blob of another version: push
 * then uploads only what is missing.
 */
export class RegistryMirrorTarget implements MirrorTarget {
  constructor(
    private readonly client: RegistryClient,
    /** A private directory for the files of the version being pushed. */
    private readonly workDir: string,
  ) {}

  get display(): string {
    return this.client.display;
  }

  async manifest(name: string, version: string): Promise<Buffer | null> {
    const what = `mirror ${name}@${version} to ${this.display}`;
    return this.client.getOptional(templatePath(name, version), what, MAX_MANIFEST_BYTES + 1);
  }

  async publish(source: SourceVersion, fetchBlob: FetchBlob): Promise<number> {
    const { name, version, manifest } = source;
    const dir = await mkdtemp(join(this.workDir, "push-"));
    try {
      const manifestFile = join(dir, manifestFileName(name, version));
      await writeFile(manifestFile, source.bytes);
      if (source.signature) await writeFile(`${manifestFile}.asc`, source.signature);
      for (const artifact of manifest.artifacts) {
        const file = join(dir, artifactFileName(name, version, artifact.format));
        await rename(await fetchBlob(parseDigest(artifact.digest)!, artifact.size), file);
        const sig = source.artifactSignatures.get(artifact.format);
        if (sig) await writeFile(`${file}.asc`, sig);
      }
      const result = await pushTemplate(this.client, await loadLocalTemplate(manifestFile));
      return result.uploaded;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  async addSignatures(source: SourceVersion): Promise<void> {
    const { name, version } = source;
    const what = `mirror ${name}@${version} to ${this.display}`;
    const put = async (apiPath: string, sig: Buffer) => {
      // Create-if-absent on the registry: the same signature again is a no-op, another one 409.
      const reply = await this.client.request("PUT", apiPath, {
        what,
        body: sig,
        idempotent: true,
        headers: { "content-type": "application/pgp-signature" },
      });
      reply.discard();
    };
    if (source.signature) await put(templatePath(name, version, "signature"), source.signature);
    for (const [format, sig] of source.artifactSignatures)
      await put(templatePath(name, version, "signature", format), sig);
  }

  async setTag(name: string, tag: string, version: string): Promise<void> {
    const reply = await this.client.request("PUT", templatePath(name, "tags", tag), {
      what: `mirror ${name} tag ${tag} to ${this.display}`,
      body: Buffer.from(version),
      idempotent: true,
      headers: { "content-type": "text/plain" },
    });
    reply.discard();
  }
}
