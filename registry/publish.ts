import { parseDigest } from "../common/digest.js";
import type { Manifest } from "../common/manifest.js";
import { ApiError, badRequest } from "./errors.js";
import { markedByLiveRun, PIN_TTL_MS, pinBlobs } from "./gc-protocol.js";
import { keys } from "./keys.js";
import { putImmutable, type Storage } from "./storage/storage.js";

/**
 * Publishes a version's manifest into storage: the one way a manifest is written, by a PUT and
 * by a mirror into storage alike, because only this order is safe beside an online GC (gc.ts):
 * pin the blobs, check that no live GC run marked them, check they exist with the right sizes,
 * create the manifest if absent, unpin. Nothing is ever taken back: once this returns, the
 * manifest stays, and so do its blobs, until a DELETE.
 *
 * "created" when this call wrote the manifest, "same" when these exact bytes were there. Throws
 * ApiError: 400 BLOB_UNKNOWN or MANIFEST_INVALID, 503 GC_IN_PROGRESS or TRY_AGAIN (nothing
 * written; the caller may retry), 409 VERSION_EXISTS (other bytes were there).
 */
export async function publishManifest(
  storage: Storage,
  manifest: Manifest,
  bytes: Buffer,
): Promise<"created" | "same"> {
  const blobs = [...new Set(manifest.artifacts.map((a) => parseDigest(a.digest)!))];
  const pin = await pinBlobs(storage, blobs);
  try {
    for (const artifact of manifest.artifacts) {
      if (await markedByLiveRun(storage, parseDigest(artifact.digest)!)) {
        throw new ApiError(
          503,
          "GC_IN_PROGRESS",
          `blob ${artifact.digest} is being garbage-collected; push again (its blob may need uploading again)`,
          { "Retry-After": "5" },
        );
      }
    }
    await checkBlobs(storage, manifest); // after the mark checks: a blob deleted under a mark is gone by now
    if (Date.now() - pin.at >= PIN_TTL_MS / 2) {
      // GC may soon ignore the pin; the checks above must be fresh when the manifest appears.
      throw new ApiError(
        503,
        "TRY_AGAIN",
        "publishing took too long between its checks and its write; push again",
        {
          "Retry-After": "1",
        },
      );
    }
    const { name, version } = manifest;
    const outcome = await putImmutable(storage, keys.manifest(name, version), bytes);
    if (outcome === "other") {
      throw new ApiError(
        409,
        "VERSION_EXISTS",
        `${name}@${version} already exists with other content; versions are immutable`,
      );
    }
    return outcome;
  } finally {
    // A pin left behind (storage error) only keeps its blobs until PIN_TTL_MS: never fail for it.
    await storage.deleteObject(pin.key).catch(() => {});
  }
}

/** Every artifact must name a blob the storage holds, with the size the manifest claims. */
export async function checkBlobs(storage: Storage, manifest: Manifest): Promise<void> {
  for (const artifact of manifest.artifacts) {
    const info = await storage.statBlob(parseDigest(artifact.digest)!);
    if (!info) {
      throw badRequest(
        "BLOB_UNKNOWN",
        `artifact ${artifact.format} names blob ${artifact.digest}, which the registry does not have; upload it first`,
      );
    }
    if (info.size !== artifact.size) {
      throw badRequest(
        "MANIFEST_INVALID",
        `artifact ${artifact.format} says ${artifact.size} bytes, blob ${artifact.digest} has ${info.size}`,
      );
    }
  }
}
