import { createHash } from "node:crypto";
import { parseDigest } from "../../common/digest.js";
import { CodedError } from "../../common/error-codes.js";
import type { Manifest } from "../../common/manifest.js";
import type { StorageDriver } from "../storage/driver.js";
import type { Blobs } from "./blobs.js";
import { markedByLiveRun, PIN_TTL_MS, pinBlobs } from "./gc-protocol.js";
import { layout } from "./layout.js";
import { putImmutable } from "./manifests.js";

/**
 * Publishes a version's manifest: the one way a manifest is written, by a PUT and by a mirror
 * into storage alike, because only this order is safe beside an online GC (gc.ts): pin the
 * blobs, check that no live GC run marked them, check they exist with the right sizes, create
 * the manifest if absent, unpin. Nothing is ever taken back: once this returns, the manifest
 * stays, and so do its blobs, until a DELETE.
 *
 * "created" when this call wrote the manifest, "same" when these exact bytes were there. Throws
 * CodedError: BLOB_UNKNOWN (400) or MANIFEST_INVALID, GC_IN_PROGRESS or TRY_AGAIN (nothing
 * written; the caller may retry), VERSION_EXISTS (other bytes were there).
 */
export async function publishManifest(
  driver: StorageDriver,
  blobs: Blobs,
  manifest: Manifest,
  bytes: Buffer,
): Promise<"created" | "same"> {
  const hexes = [...new Set(manifest.artifacts.map((a) => parseDigest(a.digest)!))];
  const pin = await pinBlobs(driver, hexes);
  try {
    for (const artifact of manifest.artifacts) {
      if (await markedByLiveRun(driver, parseDigest(artifact.digest)!)) {
        throw new CodedError(
          "GC_IN_PROGRESS",
          `blob ${artifact.digest} is being garbage-collected; push again (its blob may need uploading again)`,
          { "Retry-After": "5" },
        );
      }
    }
    await checkBlobs(blobs, manifest); // after the mark checks: a blob deleted under a mark is gone by now
    await checkFingerprint(blobs, manifest);
    if (Date.now() - pin.at >= PIN_TTL_MS / 2) {
      // GC may soon ignore the pin; the checks above must be fresh when the manifest appears.
      throw new CodedError(
        "TRY_AGAIN",
        "publishing took too long between its checks and its write; push again",
        {
          "Retry-After": "1",
        },
      );
    }
    const { name, version } = manifest;
    const outcome = await putImmutable(driver, layout.manifest(name, version), bytes);
    if (outcome === "other") {
      throw new CodedError(
        "VERSION_EXISTS",
        `${name}@${version} already exists with other content; versions are immutable`,
      );
    }
    return outcome;
  } finally {
    // A pin left behind (storage error) only keeps its blobs until PIN_TTL_MS: never fail for it.
    await driver.delete(pin.key).catch(() => {});
  }
}

/** Every artifact must name a blob the storage holds, with the size the manifest claims. */
export async function checkBlobs(blobs: Blobs, manifest: Manifest): Promise<void> {
  for (const artifact of manifest.artifacts) {
    const info = await blobs.stat(parseDigest(artifact.digest)!);
    if (!info) {
      throw new CodedError(
        "BLOB_UNKNOWN",
        `artifact ${artifact.format} names blob ${artifact.digest}, which the registry does not have; upload it first`,
        {},
        400,
      );
    }
    if (info.size !== artifact.size) {
      throw new CodedError(
        "MANIFEST_INVALID",
        `artifact ${artifact.format} says ${artifact.size} bytes, blob ${artifact.digest} has ${info.size}`,
      );
    }
  }
}

/**
 * The Incus fingerprint a manifest claims (incus-meta.tar.xz `combinedSha256`) must be
 * sha256(metadata ‖ rootfs.tar.xz): the simplestreams index serves it, and Incus refuses an image
 * whose files hash otherwise. One read of the two blobs, at push only.
 */
export async function checkFingerprint(blobs: Blobs, manifest: Manifest): Promise<void> {
  const meta = manifest.artifacts.find((a) => a.format === "incus-meta.tar.xz");
  const rootfs = manifest.artifacts.find((a) => a.format === "tar.xz");
  if (!meta?.combinedSha256 || !rootfs) return;
  const hash = createHash("sha256");
  for (const artifact of [meta, rootfs]) {
    const stream = await blobs.read(parseDigest(artifact.digest)!);
    if (!stream) throw new CodedError("BLOB_UNKNOWN", `blob ${artifact.digest} does not exist`, {}, 400);
    for await (const chunk of stream) hash.update(chunk as Buffer);
  }
  const actual = hash.digest("hex");
  if (actual !== meta.combinedSha256) {
    throw new CodedError(
      "MANIFEST_INVALID",
      `artifact incus-meta.tar.xz says combinedSha256 ${meta.combinedSha256}, but sha256(incus-meta.tar.xz + tar.xz) is ${actual}`,
    );
  }
}
