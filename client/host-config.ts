import { readFile } from "node:fs/promises";
import { parseDocument } from "yaml";
import { z } from "zod";
import { UserError } from "../common/errors.js";

/**
 * A host's settings for `templar pull|update|prune|list` (DESIGN: flags, then TEMPLAR_*
 * environment, then a config file). The file is /etc/templar/templar.yaml, or $TEMPLAR_HOST_CONFIG:
 *
 *   registry: https://templates.example.org
 *   keyring: /etc/templar/trusted.asc   # public keys of the maintainers this host trusts
 *   proxmox: false                       # true: Proxmox naming, tar.zst, /var/lib/vz/template/cache
 *   dest: /vz/template/cache             # template cache (default depends on `proxmox`)
 *   token: ...                           # only for registries without anonymous pull
 */
export const HostConfigSchema = z.strictObject({
  registry: z.string().optional(),
  keyring: z.string().optional(),
  proxmox: z.boolean().optional(),
  dest: z.string().optional(),
  token: z.string().optional(),
});
export type HostConfig = z.infer<typeof HostConfigSchema>;

export const DEFAULT_HOST_CONFIG = "/etc/templar/templar.yaml";
export const DEFAULT_KEYRING = "/etc/templar/trusted.asc";
export const OPENVZ_CACHE = "/vz/template/cache";
export const PROXMOX_CACHE = "/var/lib/vz/template/cache";

export async function loadHostConfig(): Promise<HostConfig> {
  const path = process.env.TEMPLAR_HOST_CONFIG || DEFAULT_HOST_CONFIG;
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw new UserError(`host config ${path}: ${(err as Error).message}`);
  }
  const doc = parseDocument(text);
  if (doc.errors.length) {
    const e = doc.errors[0]!;
    const pos = e.linePos?.[0];
    throw new UserError(
      `host config ${path}${pos ? `:${pos.line}:${pos.col}` : ""}: ${e.message.split("\n")[0]}`,
    );
  }
  const result = HostConfigSchema.safeParse(doc.toJS() ?? {});
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new UserError(`host config ${path}: ${issue.path.join(".") || "(top level)"}: ${issue.message}`);
  }
  return result.data;
}

export interface HostSettings {
  registry: string | undefined;
  token: string | undefined;
  keyring: string;
  proxmox: boolean;
  dest: string;
  /** --allow-unsigned or TEMPLAR_ALLOW_UNSIGNED=1 (deliberately not a config file setting). */
  allowUnsigned: boolean;
}

function envFlag(name: string): boolean | undefined {
  const v = process.env[name];
  return v ? v === "1" || v === "true" || v === "yes" : undefined;
}

/** Resolves each setting: flag, then environment, then the host config, then the default. */
export async function hostSettings(flags: {
  registry?: string;
  token?: string;
  keyring?: string;
  proxmox?: boolean;
  dest?: string;
  "allow-unsigned"?: boolean;
}): Promise<HostSettings> {
  const config = await loadHostConfig();
  const env = process.env;
  const proxmox = flags.proxmox ?? envFlag("TEMPLAR_PROXMOX") ?? config.proxmox ?? false;
  return {
    registry: flags.registry ?? (env.TEMPLAR_REGISTRY || undefined) ?? config.registry,
    token: flags.token ?? (env.TEMPLAR_TOKEN || undefined) ?? config.token,
    keyring: flags.keyring ?? (env.TEMPLAR_KEYRING || undefined) ?? config.keyring ?? DEFAULT_KEYRING,
    proxmox,
    allowUnsigned: flags["allow-unsigned"] ?? envFlag("TEMPLAR_ALLOW_UNSIGNED") ?? false,
    dest:
      flags.dest ??
      (env.TEMPLAR_DEST || undefined) ??
      config.dest ??
      (proxmox ? PROXMOX_CACHE : OPENVZ_CACHE),
  };
}
