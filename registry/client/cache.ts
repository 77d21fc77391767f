import { open, readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { UserError } from "../../common/errors.js";
import type { Format } from "../../common/manifest.js";

/**
 * The layout `templar pull` keeps in a host's template cache (default /vz/template/cache):
 *
 *   <name>.tar.gz                                   the template, only ever complete and verified
 *   .templar/<name>.tar.gz.manifest.json            the exact manifest bytes it was pulled with
 *   .templar/<name>.tar.gz.manifest.json.asc        the manifest's signature, when the registry has one
 *   .templar/<name>.tar.gz.origin.json              registry, reference, version, digest, time
 *   .templar/<name>.tar.gz.<digest12>.partial       an interrupted download, resumed next time
 *   .templar/<name>.tar.gz.lock                     the pid of the pull writing it right now
 *
 * The state lives in a hidden folder of the cache itself so renames stay on one filesystem and
 * vzctl, vztmpl-dl and pveam (which look for `<name>.tar.*`) never see it.
 */
export const STATE_DIR = ".templar";
export const DEFAULT_CACHE = "/vz/template/cache";

export const OriginSchema = z.looseObject({
  registry: z.string(),
  ref: z.string(),
  name: z.string(),
  version: z.string(),
  format: z.string(),
  digest: z.string(),
  size: z.number(),
  pulled: z.string(),
  /** The file's name in the cache, when it is not `<name>.<format>` (older records lack it). */
  file: z.string().optional(),
  /** How the manifest was verified, e.g. "signed by <fingerprint>" or "unsigned (allowed)". */
  verified: z.string().optional(),
});
export type Origin = z.infer<typeof OriginSchema>;

export interface CachePaths {
  final: string;
  stateDir: string;
  manifest: string;
  signature: string;
  origin: string;
  partial: string;
  lock: string;
}

/**
 * `fileName` overrides the template's file name in `dest` (Proxmox's `<name>_<version>_<arch>`);
 * the state files stay keyed by `<name>.<format>`, one record per template and format.
 */
export function cachePaths(
  dest: string,
  name: string,
  format: Format,
  hex: string,
  fileName?: string,
): CachePaths {
  const file = `${name}.${format}`;
  const stateDir = join(dest, STATE_DIR);
  return {
    final: join(dest, fileName ?? file),
    stateDir,
    manifest: join(stateDir, `${file}.manifest.json`),
    signature: join(stateDir, `${file}.manifest.json.asc`),
    origin: join(stateDir, `${file}.origin.json`),
    partial: join(stateDir, `${file}.${hex.slice(0, 12)}.partial`),
    lock: join(stateDir, `${file}.lock`),
  };
}

/** Removes partial downloads of `<name>.<format>` left for other digests (an older version). */
export async function removeStalePartials(paths: CachePaths): Promise<void> {
  const names = await readdir(paths.stateDir).catch(() => [] as string[]);
  const keep = paths.partial.slice(paths.partial.lastIndexOf("/") + 1);
  const file = keep.replace(/\.[0-9a-f]*\.partial$/, ""); // `<name>.<format>`, whatever the final name
  for (const entry of names) {
    if (entry !== keep && entry.startsWith(`${file}.`) && entry.endsWith(".partial")) {
      await rm(join(paths.stateDir, entry), { force: true });
    }
  }
}

export async function readOrigin(path: string): Promise<Origin | null> {
  try {
    const parsed = OriginSchema.safeParse(JSON.parse(await readFile(path, "utf8")));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/** Every template pulled into `dest`, from the origin records (for `templar list`). */
export async function listCache(dest: string): Promise<Origin[]> {
  const dir = join(dest, STATE_DIR);
  const names = await readdir(dir).catch(() => [] as string[]);
  const out: Origin[] = [];
  for (const entry of names.sort()) {
    if (!entry.endsWith(".origin.json")) continue;
    const origin = await readOrigin(join(dir, entry));
    if (origin) out.push(origin);
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Takes the lock of one cache file (create-exclusive, holding our pid), so two pulls of the same
 * template never write into one partial file. A lock whose process is gone is taken over.
 * Returns the release function.
 */
export async function lockCacheFile(paths: CachePaths): Promise<() => Promise<void>> {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const handle = await open(paths.lock, "wx");
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      return () => rm(paths.lock, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const pid = Number((await readFile(paths.lock, "utf8").catch(() => "")).trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
        throw new UserError(
          `another templar pull (pid ${pid}) is writing ${paths.final}; try again when it is done`,
        );
      }
      await rm(paths.lock, { force: true });
    }
  }
  throw new UserError(`cannot take the lock ${paths.lock}`);
}
