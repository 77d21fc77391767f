import { readdir, rm } from "node:fs/promises";
import type { Format } from "../../common/formats.js";
import { parseRef, type TemplateRef } from "../../common/reference.js";
import { cacheFile, listCache, type Origin, stateDir, templateFile } from "./cache.js";

/**
 * The templates `templar pull` put into a template cache, for `templar update` and `prune`:
 * each origin record, the file it describes, and how to ask for a newer version of it.
 */
export interface LocalEntry {
  origin: Origin;
  path: string;
  format: Format;
  /** Pulled with Proxmox naming (the file name carries the version). */
  proxmox: boolean;
}

export async function localTemplates(dest: string, names: string[] = []): Promise<LocalEntry[]> {
  const out: LocalEntry[] = [];
  for (const origin of await listCache(dest)) {
    if (names.length > 0 && !names.includes(origin.name)) continue;
    const format = origin.format;
    const plain = `${origin.name}.${format}`;
    out.push({
      origin,
      format,
      path: templateFile(dest, origin.name, format, origin.file),
      proxmox: origin.file !== undefined && origin.file !== plain,
    });
  }
  return out;
}

/**
 * What `update` asks the registry for: the reference originally pulled (a tag or a range keeps
 * its meaning), except an exact version, which becomes the newest release (`latest`).
 */
export function updateRef(origin: Origin): TemplateRef {
  const ref = parseRef(origin.ref.includes("@") ? origin.ref : origin.name);
  return ref.kind === "version" ? { name: ref.name, ref: "latest", kind: "tag" } : ref;
}

/** Removes a pulled template: its file, and its state (manifest, origin, partial downloads). */
export async function removeLocal(dest: string, entry: LocalEntry): Promise<void> {
  await rm(templateFile(dest, entry.origin.name, entry.format, entry.origin.file), { force: true });
  const state = await stateDir(dest, false);
  if (!state) return;
  const prefix = `${entry.origin.name}.${entry.format}.`;
  for (const file of await readdir(state).catch(() => [] as string[])) {
    if (file.startsWith(prefix)) await rm(cacheFile(dest, file, "state"), { force: true });
  }
}
