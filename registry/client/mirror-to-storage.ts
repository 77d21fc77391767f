import { createReadStream } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { parseDigest } from "../../common/digest.js";
import { UserError } from "../../common/errors.js";
import { ApiError } from "../errors.js";
import { keys } from "../keys.js";
import { publishManifest } from "../publish.js";
import { putImmutable, type Storage } from "../storage/storage.js";
import type { FetchBlob, MirrorTarget, SourceVersion } from "./mirror.js";

/** Tries of a manifest that a GC refused: its backoff (250 ms doubling, up to 5 s) spans ~45 s. */
const PUBLISH_ATTEMPTS = 12;

/**
 * A mirror into storage in the registry's own layout (a directory or a bucket), which `templar
 * serve --storage` then serves. It writes what the registry's push handlers write, in the order
 * that keeps readers safe: blobs (visible only once their digest matched), signatures, and the
 * manifest last, create-if-absent, so a version appears whole or not at all. The manifest goes
 * through publishManifest, like a PUT, so the mirror is safe beside a registry's online GC.
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
    const { name, version } = source;
    let copied = 0;
    let signed = false;
    const fetched = new Map<string, string>(); // hex -> file: a blob copied again is not fetched again
    for (let attempt = 1; ; attempt++) {
      copied += await this.copyMissingBlobs(source, fetchBlob, fetched);
      if (!signed) await this.addSignatures(source);
      signed = true;
      try {
        // What the registry's PUT does (pin, GC check, create), so a registry serving and
        // collecting this storage meanwhile never deletes a blob of what we published.
        await publishManifest(this.storage, source.manifest, source.bytes); // "same" is fine too
        return copied;
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        if (err.code === "VERSION_EXISTS") {
          throw new UserError(
            `mirror ${name}@${version}: ${this.display} got other content for this version meanwhile`,
          );
        }
        // That registry's GC is deleting (or just deleted) a blob we found there: wait for it
        // to finish, then copy the blob again.
        const retry = err.status === 503 || err.code === "BLOB_UNKNOWN";
        if (!retry || attempt >= PUBLISH_ATTEMPTS)
          throw new UserError(`mirror ${name}@${version}: ${err.message}`);
        await sleep(err.status === 503 ? Math.min(250 * 2 ** (attempt - 1), 5000) : 0);
      }
    }
  }

  private async copyMissingBlobs(
    source: SourceVersion,
    fetchBlob: FetchBlob,
    fetched: Map<string, string>,
  ): Promise<number> {
    let copied = 0;
    for (const artifact of source.manifest.artifacts) {
      const hex = parseDigest(artifact.digest)!;
      if (await this.storage.statBlob(hex)) continue;
      const file = fetched.get(hex) ?? (await fetchBlob(hex, artifact.size));
      fetched.set(hex, file);
      await this.storage.putBlob(hex, createReadStream(file));
      copied++;
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
