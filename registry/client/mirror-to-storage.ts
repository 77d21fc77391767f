import { createReadStream } from "node:fs";
import { parseDigest } from "../../common/digest.js";
import { UserError } from "../../common/errors.js";
import { keys } from "../keys.js";
import { putImmutable, type Storage } from "../storage/storage.js";
import type { FetchBlob, MirrorTarget, SourceVersion } from "./mirror.js";

/**
 * A mirror into storage in the registry's own layout (a directory or a bucket), which `templar
 * serve --storage` then serves. It writes what the registry's push handlers write, in the order
 * that keeps readers safe: blobs (visible only once their digest matched), signatures, and the
 * manifest last, create-if-absent, so a version appears whole or not at all.
 */
export class StorageMirrorTarget implements MirrorTarget {
  constructor(
    private readonly storage: Storage,
    readonly display: string,
  ) {}

  manifest(name: string, version: string): Promise<Buffer | null> {
    return this.storage.getObject(keys.manifest(name, version));
  }

  async publish(source: SourceVersion, fetchBlob: FetchBlob): Promise<number> {
    let copied = 0;
    for (const artifact of source.manifest.artifacts) {
      const hex = parseDigest(artifact.digest)!;
      if (await this.storage.statBlob(hex)) continue;
      const file = await fetchBlob(hex, artifact.size);
      await this.storage.putBlob(hex, createReadStream(file));
      copied++;
    }
    await this.addSignatures(source);
    const { name, version, bytes } = source;
    // "same": someone else published this very version meanwhile, which is fine.
    if ((await putImmutable(this.storage, keys.manifest(name, version), bytes)) === "other") {
      throw new UserError(
        `mirror ${name}@${version}: ${this.display} got other content for this version meanwhile`,
      );
    }
    return copied;
  }

  async addSignatures(source: SourceVersion): Promise<void> {
    const { name, version } = source;
    const wanted: [string, Buffer][] = [...source.artifactSignatures].map(([format, sig]) => [
      keys.artifactSignature(name, version, format),
      sig,
    ]);
    if (source.signature) wanted.push([keys.signature(name, version), source.signature]);
    for (const [key, sig] of wanted) {
      // Signatures are immutable as in the registry: a different one is never replaced.
      if ((await putImmutable(this.storage, key, sig)) === "other")
        throw new UserError(`mirror ${name}@${version}: ${this.display} has another signature in ${key}`);
    }
  }

  async setTag(name: string, tag: string, version: string): Promise<void> {
    await this.storage.putObject(keys.tag(name, tag), Buffer.from(`${version}\n`));
  }
}
