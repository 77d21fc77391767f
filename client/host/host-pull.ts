import type { Format } from "../../common/formats.js";
import { proxmoxFileName } from "../../common/manifest-files.js";
import type { TemplateRef } from "../../common/reference.js";
import type { RegistryClient } from "../http.js";
import type { DeltaMode } from "./delta-choice.js";
import { type PullResult, pullTemplate } from "./pull.js";
import { manifestVerifier } from "./verify.js";

/**
 * A pull as a host does it (`templar pull`, `templar update`): signature checked against the
 * host's keyring, digest checked while streaming, and the file named the way the host's tools
 * look for it: OpenVZ `<name>.tar.gz` (vzctl), or Proxmox `<name>_<version>_<arch>.tar.zst`.
 */
export interface HostPullOptions {
  dest: string;
  proxmox: boolean;
  /** Default: tar.zst for Proxmox, tar.gz (what vzctl reads) otherwise. */
  format?: Format;
  keyring: string;
  allowUnsigned: boolean;
  onProgress?: (received: number, total: number) => void;
  /** Delta patches from the cached version: auto (default), always or never (delta-choice.ts). */
  delta?: DeltaMode;
  maxWindowLog?: number;
  onNote?: (note: string) => void;
}

export function defaultFormat(proxmox: boolean): Format {
  return proxmox ? "tar.zst" : "tar.gz";
}

export function hostPull(
  client: RegistryClient,
  ref: TemplateRef,
  options: HostPullOptions,
): Promise<PullResult> {
  return pullTemplate(client, ref, {
    dest: options.dest,
    format: options.format ?? defaultFormat(options.proxmox),
    onProgress: options.onProgress,
    ...(options.delta ? { delta: options.delta } : {}),
    ...(options.maxWindowLog ? { maxWindowLog: options.maxWindowLog } : {}),
    ...(options.onNote ? { onNote: options.onNote } : {}),
    verify: manifestVerifier({ keyring: options.keyring, allowUnsigned: options.allowUnsigned }),
    ...(options.proxmox ? { fileName: proxmoxFileName } : {}),
  });
}
