import { resolve } from "node:path";
import { UserError } from "../../common/errors.js";
import type { StorageDriver } from "./driver.js";
import { LocalDriver } from "./local-driver.js";
import type { S3ConfigSection } from "./s3-config.js";

/** Backend settings that do not fit in the URL (flags and the config file's section). */
export interface BackendSettings {
  s3Flags?: Partial<S3ConfigSection>;
  s3Config?: Partial<S3ConfigSection>;
  /** The environment the S3 settings may come from (TEMPLAR_S3_*, AWS_*); the CLI passes its own. */
  env?: Readonly<Record<string, string | undefined>>;
}

/**
 * Storage backends by URL scheme: `--storage DIR` (or file:///DIR) and `s3://bucket/prefix`. A new backend adds one row here.
 */
export const storageBackends: Record<
  string,
  (url: URL, settings: BackendSettings) => Promise<StorageDriver>
> = {
  "file:": async (url) => new LocalDriver(decodeURIComponent(url.pathname)),
  // Loaded on use: the AWS SDK costs start-up time that local storage should not pay.
  "s3:": async (url, settings) => {
    const { S3Driver } = await import("./s3-driver.js");
    const { resolveS3Options } = await import("./s3-config.js");
    return new S3Driver(
      resolveS3Options(url.href, settings.s3Flags ?? {}, settings.s3Config ?? {}, settings.env ?? {}),
    );
  },
};

/** Opens storage from a `--storage` value: a URL with a known scheme, else a local directory path. */
export async function openStorage(spec: string, settings: BackendSettings = {}): Promise<StorageDriver> {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(spec)?.[1];
  if (!scheme) return new LocalDriver(resolve(spec));
  const open = storageBackends[`${scheme.toLowerCase()}:`];
  if (!open) {
    const known = Object.keys(storageBackends)
      .map((s) => `${s}//`)
      .join(", ");
    throw new UserError(
      `--storage ${spec}: unknown storage scheme ${scheme}:// (known: ${known}, or a directory)`,
    );
  }
  let url: URL;
  try {
    url = new URL(spec);
  } catch {
    throw new UserError(`--storage ${spec}: not a valid URL`);
  }
  return open(url, settings);
}
