import { resolve } from "node:path";
import { parseEpoch } from "../common/epoch.js";
import { usageError } from "../common/errors.js";
import { DEFAULT_CONFIG_FILE } from "../registry/config-name.js";

/**
 * Settings as the user gives them, resolved at the edge (docs/architecture.md "Settings"): a
 * flag wins over a TEMPLAR_* environment variable, which wins over a config file, which wins
 * over the default. This module is the one place below cli/ that reads the environment; what
 * it resolves travels down as plain options.
 */

/** An environment variable; unset and empty are the same. */
export function env(name: string): string | undefined {
  const value = process.env[name];
  return value === undefined || value === "" ? undefined : value;
}

/** A flag, then the environment variable, then a fallback. */
export function flagOrEnv(flag: string | undefined, envName: string, fallback?: string): string | undefined {
  return flag ?? env(envName) ?? fallback;
}

/** A yes/no variable: 1/true/yes/on or 0/false/no/off; anything else is a usage error. */
export function envBoolean(name: string): boolean | undefined {
  const value = env(name);
  if (value === undefined) return undefined;
  if (/^(1|true|yes|on)$/i.test(value)) return true;
  if (/^(0|false|no|off)$/i.test(value)) return false;
  throw usageError(`${name}=${value}: expected true or false`);
}

/** A whole positive number from the environment; anything else is a usage error. */
export function envCount(name: string): number | undefined {
  const value = env(name);
  if (value === undefined) return undefined;
  if (!/^[1-9]\d*$/.test(value)) throw usageError(`${name}=${value}: expected a whole number above 0`);
  return Number(value);
}

/**
 * The variables S3 storage settings may come from (TEMPLAR_S3_*, AWS_*), for `openStorage`:
 * `serve`, `gc` and `mirror` into a bucket. Credentials the SDK finds by itself (its default
 * chain) are not copied here.
 */
export function storageEnvironment(): Record<string, string> {
  const picked: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && value !== "" && /^(TEMPLAR_S3_|AWS_)/.test(name)) picked[name] = value;
  }
  return picked;
}

/** How the client talks to registries: retries, idle timeout, upload chunk size. */
export function clientTuning(): { attempts?: number; timeoutMs?: number; chunkSize?: number } {
  return {
    attempts: envCount("TEMPLAR_RETRIES"),
    timeoutMs: envCount("TEMPLAR_HTTP_TIMEOUT_MS"),
    chunkSize: envCount("TEMPLAR_UPLOAD_CHUNK"),
  };
}

/**
 * SOURCE_DATE_EPOCH as the user gave it: `--source-date-epoch`, else the environment variable
 * (reproducible-builds.org); undefined when neither is set.
 */
export function sourceDateEpoch(
  flag: string | undefined,
): { value: number; from: "option" | "environment" } | undefined {
  if (flag !== undefined) return { value: parseEpoch(flag, "--source-date-epoch"), from: "option" };
  const value = env("SOURCE_DATE_EPOCH");
  if (value === undefined) return undefined;
  return { value: parseEpoch(value, "SOURCE_DATE_EPOCH"), from: "environment" };
}

/** The registry's storage: `--storage`, else $TEMPLAR_STORAGE, else ./data. */
export function registryStorage(flag: string | undefined): string {
  return flagOrEnv(flag, "TEMPLAR_STORAGE", "./data")!;
}

/**
 * The registry's config file (tokens, keys): `--config`, else $TEMPLAR_CONFIG, else the file
 * beside the storage it belongs to (`<storage dir>/templar-registry.yaml`). Never a file found in
 * the working directory: two registries started from one directory (a registry and its mirror)
 * would share tokens. A bucket has no "beside", so S3 storage needs the file named.
 */
export function registryConfigPath(flag: string | undefined, storage: string): string {
  const named = flagOrEnv(flag, "TEMPLAR_CONFIG");
  if (named !== undefined) return resolve(named);
  if (/^s3:\/\//i.test(storage))
    throw usageError(
      `storage ${storage} is a bucket: name the registry's config file with --config FILE (or TEMPLAR_CONFIG)`,
    );
  return resolve(storage, DEFAULT_CONFIG_FILE);
}
