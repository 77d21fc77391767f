import { usageError } from "./errors.js";

/**
 * SOURCE_DATE_EPOCH (reproducible-builds.org): whole seconds since 1970-01-01 UTC. The one parser
 * of it, for --source-date-epoch, the environment variable and recipes alike.
 */
export function parseEpoch(value: string, what: string): number {
  if (!/^\d{1,12}$/.test(value.trim()))
    throw usageError(`${what}: expected whole seconds since 1970-01-01 UTC, got ${JSON.stringify(value)}`);
  return Number(value.trim());
}
