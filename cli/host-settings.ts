import { z } from "zod";
import { OPENVZ_CACHE, PROXMOX_CACHE } from "../client/host/cache.js";
import { DELTA_MODES, type DeltaMode, parseDeltaMode } from "../client/host/delta-choice.js";
import { loadYamlFile } from "../common/config-file.js";
import { DELTA_MIN_WINDOW_LOG, ZSTD_MAX_WINDOW_LOG } from "../common/delta.js";
import { usageError } from "../common/errors.js";
import { env, envBoolean, flagOrEnv } from "./settings.js";

/**
 * A host's settings for `templar pull|update|prune|list`: flags, then TEMPLAR_* environment,
 * then a config file, /etc/templar/templar.yaml or $TEMPLAR_HOST_CONFIG:
 *
 *   registry: https://templates.example.org
 *   keyring: /etc/templar/trusted.asc   # public keys of the maintainers this host trusts
 *   proxmox: false                       # true: Proxmox naming, tar.zst, /var/lib/vz/template/cache
 *   dest: /vz/template/cache             # template cache (default depends on `proxmox`)
 *   token: ...                           # only for registries without anonymous pull
 *   delta: auto                          # always | never: delta patches on updates (auto: when they pay)
 *   deltaMaxWindow: 30                   # refuse patches whose zstd window exceeds 2^N bytes
 */
export const HostConfigSchema = z.strictObject({
  registry: z.string().optional(),
  keyring: z.string().optional(),
  proxmox: z.boolean().optional(),
  dest: z.string().optional(),
  token: z.string().optional(),
  delta: z.enum(DELTA_MODES).optional(),
  deltaMaxWindow: z.number().int().min(DELTA_MIN_WINDOW_LOG).max(ZSTD_MAX_WINDOW_LOG).optional(),
});
export type HostConfig = z.infer<typeof HostConfigSchema>;

export const DEFAULT_HOST_CONFIG = "/etc/templar/templar.yaml";
export const DEFAULT_KEYRING = "/etc/templar/trusted.asc";

export function loadHostConfig(): Promise<HostConfig> {
  return loadYamlFile(env("TEMPLAR_HOST_CONFIG") ?? DEFAULT_HOST_CONFIG, HostConfigSchema, "host config", {});
}

export interface HostSettings {
  registry: string | undefined;
  token: string | undefined;
  keyring: string;
  proxmox: boolean;
  dest: string;
  /** True when no flag, variable or config named the cache: the host type's default was taken. */
  destIsDefault: boolean;
  /** --allow-unsigned or TEMPLAR_ALLOW_UNSIGNED=1 (deliberately not a config file setting). */
  allowUnsigned: boolean;
  /** Whether updates go through delta patches (--delta, --no-delta, TEMPLAR_DELTA, delta:). */
  delta: DeltaMode;
  /** Patches needing a zstd window over 2^N bytes are refused; undefined: the client's default. */
  deltaMaxWindow: number | undefined;
}

function deltaMode(text: string | undefined, where: string): DeltaMode | undefined {
  if (text === undefined) return undefined;
  const mode = parseDeltaMode(text);
  if (!mode) throw usageError(`${where} ${JSON.stringify(text)}: expected ${DELTA_MODES.join(", ")}`);
  return mode;
}

/** log2 of the largest zstd window a host accepts for a patch, from a flag or variable. */
function deltaWindowLog(text: string | undefined, where: string): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < DELTA_MIN_WINDOW_LOG || n > ZSTD_MAX_WINDOW_LOG)
    throw usageError(
      `${where} ${JSON.stringify(text)}: expected a whole number from ${DELTA_MIN_WINDOW_LOG} to ${ZSTD_MAX_WINDOW_LOG} (log2 of bytes)`,
    );
  return n;
}

/** Resolves each setting: flag, then environment, then the host config, then the default. */
export async function hostSettings(flags: {
  registry?: string;
  token?: string;
  keyring?: string;
  proxmox?: boolean;
  dest?: string;
  "allow-unsigned"?: boolean;
  delta?: string;
  "no-delta"?: boolean;
  "delta-max-window"?: string;
}): Promise<HostSettings> {
  const config = await loadHostConfig();
  const proxmox = flags.proxmox ?? envBoolean("TEMPLAR_PROXMOX") ?? config.proxmox ?? false;
  const dest = flagOrEnv(flags.dest, "TEMPLAR_DEST") ?? config.dest;
  return {
    registry: flagOrEnv(flags.registry, "TEMPLAR_REGISTRY") ?? config.registry,
    token: flagOrEnv(flags.token, "TEMPLAR_TOKEN") ?? config.token,
    keyring: flagOrEnv(flags.keyring, "TEMPLAR_KEYRING") ?? config.keyring ?? DEFAULT_KEYRING,
    proxmox,
    allowUnsigned: flags["allow-unsigned"] ?? envBoolean("TEMPLAR_ALLOW_UNSIGNED") ?? false,
    dest: dest ?? (proxmox ? PROXMOX_CACHE : OPENVZ_CACHE),
    destIsDefault: dest === undefined,
    delta:
      (flags["no-delta"] ? "never" : undefined) ??
      deltaMode(flags.delta, "--delta") ??
      deltaMode(env("TEMPLAR_DELTA"), "TEMPLAR_DELTA") ??
      config.delta ??
      "auto",
    deltaMaxWindow:
      deltaWindowLog(flags["delta-max-window"], "--delta-max-window") ??
      deltaWindowLog(env("TEMPLAR_DELTA_MAX_WINDOW"), "TEMPLAR_DELTA_MAX_WINDOW") ??
      config.deltaMaxWindow,
  };
}
