import { resolve } from "node:path";
import { UserError } from "../../common/errors.js";
import { LocalStorage } from "./local.js";
import type { Storage } from "./storage.js";

/**
 * Storage backends by URL scheme: `--storage DIR` (or file:///DIR) and, once its backend exists,
 * `s3://bucket/prefix`. A new backend adds one row here.
 */
export const storageBackends: Record<string, (url: URL) => Promise<Storage>> = {
  "file:": async (url) => new LocalStorage(decodeURIComponent(url.pathname)),
};

/** Opens storage from a `--storage` value: a URL with a known scheme, else a local directory path. */
export async function openStorage(spec: string): Promise<Storage> {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(spec)?.[1];
  if (!scheme) return new LocalStorage(resolve(spec));
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
  return open(url);
}
