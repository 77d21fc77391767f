import { rm } from "node:fs/promises";
import type { ArchiveConfig } from "./config.js";
import { discover } from "./discover.js";
import { downloadToCache } from "./download.js";
import type { Acquired, AcquireOptions } from "./types.js";
import { planTrust, verifyArtifact } from "./verify.js";

export { parseGentooLatest } from "./discover.js";
export type { Acquired, AcquireOptions } from "./types.js";

/**
 * Finds, downloads and verifies an archive source's artifact, in that order: discover (keys
 * pinned, index and checksum file verified), decide the trust before anything big is fetched,
 * download (or reuse the cache), verify. Only a verified artifact path is returned; nothing is
 * unpacked here.
 */
export async function acquire(config: ArchiveConfig, options: AcquireOptions): Promise<Acquired> {
  const found = await discover(config, options);
  const plan = planTrust(config, found);
  const downloaded = await downloadToCache(found.artifactUrl, {
    cacheDir: options.cacheDir,
    stillValid: plan.canCheckCache
      ? (path) =>
          plan.check(path).then(
            () => true,
            () => false,
          )
      : undefined,
    log: options.log,
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.progress !== undefined ? { progress: options.progress } : {}),
  });
  let result: { sha256: string; verified: string };
  try {
    result = await verifyArtifact(config, found, plan, downloaded.path, options.signal);
  } catch (err) {
    await rm(downloaded.path, { force: true }); // never keep a file that failed its check
    throw err;
  }
  found.inputs.unshift({ uri: found.artifactUrl, sha256: result.sha256, verified: result.verified });
  return {
    path: downloaded.path,
    artifactUrl: found.artifactUrl,
    sha256: result.sha256,
    verified: result.verified,
    inputs: found.inputs,
    fetchedBytes: downloaded.fetched,
    fromCache: downloaded.fromCache,
  };
}
