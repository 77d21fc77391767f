import { createReadStream } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import type { FetchBlob, MirrorTarget, SourceVersion } from "../client/mirror.js";
import { parseDigest } from "../common/digest.js";
import { CodedError } from "../common/error-codes.js";
import { UserError } from "../common/errors.js";
import type { Format } from "../common/formats.js";
import type { Store } from "../registry/store/store.js";

/** Tries of a manifest that a GC refused: its backoff (250 ms doubling, up to 5 s) spans ~45 s. */
const PUBLISH_ATTEMPTS = 12;

/**
 * A mirror into storage (a directory or a bucket) through the registry's store, in the layout
 * `templar serve --storage` then serves: it writes what a push writes, through the same code, in
 * the order that keeps readers safe: blobs (visible only once their digest matched), signatures,
 * and the manifest last, published as a PUT publishes it, so a version appears whole or not at
 * all and the mirror is safe beside a registry's online GC.
 */
export class StoreMirrorTarget implements MirrorTarget {
  constructor(
    private readonly store: Store,
    readonly display: string,
  ) {}

  manifest(name: string, version: string): Promise<Buffer | null> {
    return this.store.manifests.bytes(name, version);
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
        await this.store.publish(source.manifest, source.bytes); // "same" is fine too
        return copied;
      } catch (err) {
        if (!(err instanceof CodedError)) throw err;
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
      if (await this.store.blobs.stat(hex)) continue;
      const file = fetched.get(hex) ?? (await fetchBlob(hex, artifact.size));
      fetched.set(hex, file);
      await this.store.blobs.put(hex, createReadStream(file));
      copied++;
    }
    return copied;
  }

  async addSignatures(source: SourceVersion): Promise<void> {
    const { name, version } = source;
    try {
      // Signatures are immutable as in the registry: a different one is never replaced.
      for (const [format, sig] of source.artifactSignatures)
        await this.store.manifests.putArtifactSignature(name, version, format as Format, sig);
      if (source.signature) await this.store.putSignature(name, version, source.signature);
    } catch (err) {
      if (err instanceof CodedError && err.code === "SIGNATURE_EXISTS")
        throw new UserError(`mirror ${name}@${version}: ${this.display}: ${err.message}`);
      throw err;
    }
  }

  async setTag(name: string, tag: string, version: string): Promise<void> {
    await this.store.setTag(name, tag, version);
  }
}
