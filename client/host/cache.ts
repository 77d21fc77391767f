import { constants } from "node:fs";
import { lstat, mkdir, open, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { CREATE_EXCLUSIVE, writeFileAtomic } from "../../common/atomic.js";
import { errorMessage, UserError } from "../../common/errors.js";
import { FORMATS, type Format } from "../../common/formats.js";
import { templateNameProblem } from "../../common/names.js";

/**
 * The layout `templar pull` keeps in a host's template cache (default /vz/template/cache):
 *
 *   <name>.tar.gz                                   the template, only ever complete and verified
 *   .templar/<name>.tar.gz.manifest.json            the exact manifest bytes it was pulled with
 *   .templar/<name>.tar.gz.manifest.json.asc        the manifest's signature, when the registry has one
 *   .templar/<name>.tar.gz.origin.json              registry, reference, version, digest, time
 *   .templar/<name>.tar.gz.<digest12>.partial       an interrupted download, resumed next time
 *   .templar/<name>.tar.gz.lock                     the pid of the pull writing it right now
 *   .templar/<name>.tar.gz.<digest12>.patch         a delta patch being downloaded or applied
 *   .templar/<name>.tar.gz.<digest12>.from.tar      the cached file, unpacked, while a patch is applied
 *   .templar/<name>.tar.gz.<digest12>.rebuilt       the patched template, until verified and renamed
 *
 * The state lives in a hidden folder of the cache itself so renames stay on one filesystem and
 * vzctl, vztmpl-dl and pveam (which look for `<name>.tar.*`) never see it.
 *
 * Every path pull, update and prune write or remove comes from cacheFile(), whatever the name
 * came from (a manifest, an origin record, a directory listing): a plain file name, so the
 * path stays directly inside the cache or its state folder. State files are opened with
 * O_NOFOLLOW and created exclusively, and the state folder must be a real directory of ours,
 * so a symlink planted in the cache cannot send a write anywhere else.
 */
export const STATE_DIR = ".templar";
/** Where vzctl looks for templates (OpenVZ), and where pveam keeps them (Proxmox). */
export const OPENVZ_CACHE = "/vz/template/cache";
export const PROXMOX_CACHE = "/var/lib/vz/template/cache";

/** Longest file name Linux filesystems take (NAME_MAX, in bytes). */
const NAME_MAX = 255;

/** Why `file` cannot be a file directly in a template cache (or its state folder), or null. */
export function cacheFileNameProblem(file: string): string | null {
  if (file.length === 0) return "is empty";
  if (Buffer.byteLength(file) > NAME_MAX) return `is longer than ${NAME_MAX} bytes`;
  if (file.includes("/") || file.includes("\0")) return "is not a plain file name";
  if (file.includes("..")) return "contains '..'";
  if (file.startsWith(".")) return "is hidden";
  return null;
}

/**
 * The one way to a path in the template cache `dest` (or, with `state`, in its state folder).
 * Throws when `file` is not a plain file name.
 */
export function cacheFile(dest: string, file: string, where: "cache" | "state" = "cache"): string {
  const problem = cacheFileNameProblem(file);
  if (problem)
    throw new UserError(`refusing the file name ${JSON.stringify(file)} in ${dest}: it ${problem}`);
  return where === "state" ? join(dest, STATE_DIR, file) : join(dest, file);
}

/**
 * The state folder of `dest`, checked without following links: it must be a directory (not a
 * symlink to one) owned by this user. With `create`, `dest` and the folder are made when
 * missing; without, a missing folder is null.
 */
export async function stateDir(dest: string, create: boolean): Promise<string | null> {
  const dir = join(dest, STATE_DIR);
  const look = () =>
    lstat(dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return null;
      throw new UserError(`cannot use ${dir}: ${errorMessage(err)}`);
    });
  let info = await look();
  if (!info) {
    if (!create) return null;
    try {
      await mkdir(dest, { recursive: true });
      // Not recursive: mkdir fails with EEXIST on whatever appeared there, symlink included.
      await mkdir(dir, { mode: 0o755 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST")
        throw new UserError(`cannot create ${dir}: ${errorMessage(err)}`);
    }
    info = await look();
    if (!info) throw new UserError(`cannot create ${dir}: it vanished`);
  }
  if (info.isSymbolicLink())
    throw new UserError(`${dir} is a symbolic link; refusing to keep templar's state through it (remove it)`);
  if (!info.isDirectory()) throw new UserError(`${dir} is not a directory (remove it)`);
  const uid = process.getuid?.();
  if (uid !== undefined && info.uid !== uid)
    throw new UserError(
      `${dir} belongs to uid ${info.uid}, not to this user (uid ${uid}); refusing to use it`,
    );
  return dir;
}

const READ_NOFOLLOW = constants.O_RDONLY | constants.O_NOFOLLOW;

/** A small state file's bytes (never through a symlink, at most `limit`), or null when absent or unusable. */
export async function readStateFile(path: string, limit = 1 << 20): Promise<Buffer | null> {
  const handle = await open(path, READ_NOFOLLOW).catch(() => null);
  if (!handle) return null;
  try {
    const info = await handle.stat();
    if (!info.isFile() || info.size > limit) return null;
    return await handle.readFile();
  } catch {
    return null;
  } finally {
    await handle.close();
  }
}

/** What identifies the file's current content on disk without reading it (see keptArtifact). */
export const FingerprintSchema = z.object({
  size: z.number(),
  ino: z.string(),
  mtimeNs: z.string(),
  ctimeNs: z.string(),
});
export type Fingerprint = z.infer<typeof FingerprintSchema>;

/** The fingerprint of a regular file (not a symlink), or null. */
export async function fingerprint(path: string): Promise<Fingerprint | null> {
  const info = await lstat(path, { bigint: true }).catch(() => null);
  if (!info?.isFile()) return null;
  return {
    size: Number(info.size),
    ino: String(info.ino),
    mtimeNs: String(info.mtimeNs),
    ctimeNs: String(info.ctimeNs),
  };
}

export function sameFingerprint(a: Fingerprint | null | undefined, b: Fingerprint | null): boolean {
  return (
    !!a && !!b && a.size === b.size && a.ino === b.ino && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs
  );
}

export const OriginSchema = z
  .looseObject({
    registry: z.string(),
    ref: z.string(),
    name: z.string().refine((n) => templateNameProblem(n) === null),
    version: z.string(),
    format: z.enum(FORMATS),
    digest: z.string(),
    size: z.number(),
    pulled: z.string(),
    /** The file's name in the cache, when it is not `<name>.<format>` (older records lack it). */
    file: z
      .string()
      .refine((f) => cacheFileNameProblem(f) === null)
      .optional(),
    /** How the manifest was verified, e.g. "signed by <fingerprint>" or "unsigned (allowed)". */
    verified: z.string().optional(),
    /** The file right after it was verified (older records lack it). */
    fingerprint: FingerprintSchema.optional(),
    /** The sha256 of the uncompressed tar (the manifest's rootfs.tarSha256): what a delta patch starts from. */
    tarSha256: z
      .string()
      .regex(/^[0-9a-f]{64}$/)
      .optional(),
    /** How the file got here: the registry's artifact ("full"), or rebuilt from a delta patch ("delta"). */
    via: z.enum(["full", "delta"]).optional(),
    /** With "delta": the version the patch started from. */
    deltaFrom: z.string().optional(),
    /**
     * Present when the file's bytes are not the registry's artifact (`digest`, `size`): rebuilt
     * from a delta and compressed here. Its tar is still the verified one; these are its own
     * digest and size, which "up to date" checks use.
     */
    local: z
      .object({ digest: z.string().regex(/^sha256:[0-9a-f]{64}$/), size: z.number().int().nonnegative() })
      .optional(),
  })
  // The record may only name a file of its own template and format: update and prune remove it.
  .refine(
    (o) =>
      o.file === undefined ||
      o.file === `${o.name}.${o.format}` ||
      (o.file.startsWith(`${o.name}_`) && o.file.endsWith(`.${o.format}`)),
  );
export type Origin = z.infer<typeof OriginSchema>;

export interface CachePaths {
  dest: string;
  final: string;
  stateDir: string;
  manifest: string;
  signature: string;
  origin: string;
  partial: string;
  lock: string;
}

/** The template's file in `dest`: `<name>.<format>`, or `fileName` (an origin record's `file`). */
export function templateFile(dest: string, name: string, format: Format, fileName?: string): string {
  return cacheFile(dest, fileName ?? `${name}.${format}`);
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
  return {
    dest,
    final: templateFile(dest, name, format, fileName),
    stateDir: join(dest, STATE_DIR),
    manifest: cacheFile(dest, `${file}.manifest.json`, "state"),
    signature: cacheFile(dest, `${file}.manifest.json.asc`, "state"),
    origin: cacheFile(dest, `${file}.origin.json`, "state"),
    partial: cacheFile(dest, `${file}.${hex.slice(0, 12)}.partial`, "state"),
    lock: cacheFile(dest, `${file}.lock`, "state"),
  };
}

/** Removes partial downloads of `<name>.<format>` left for other digests (an older version). */
export async function removeStalePartials(paths: CachePaths): Promise<void> {
  const names = await readdir(paths.stateDir).catch(() => [] as string[]);
  const keep = paths.partial.slice(paths.partial.lastIndexOf("/") + 1);
  const file = keep.replace(/\.[0-9a-f]*\.partial$/, ""); // `<name>.<format>`, whatever the final name
  for (const entry of names) {
    if (entry !== keep && entry.startsWith(`${file}.`) && entry.endsWith(".partial")) {
      await rm(cacheFile(paths.dest, entry, "state"), { force: true });
    }
  }
}

export async function readOrigin(path: string): Promise<Origin | null> {
  const bytes = await readStateFile(path);
  if (!bytes) return null;
  try {
    const parsed = OriginSchema.safeParse(JSON.parse(bytes.toString("utf8")));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

export async function writeOrigin(path: string, origin: Origin): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(origin, null, 2)}\n`);
}

/** Every template pulled into `dest`, from the origin records (for `templar list`). */
export async function listCache(dest: string): Promise<Origin[]> {
  const dir = await stateDir(dest, false);
  if (!dir) return [];
  const names = await readdir(dir).catch(() => [] as string[]);
  const out: Origin[] = [];
  for (const entry of names.sort()) {
    if (!entry.endsWith(".origin.json") || cacheFileNameProblem(entry)) continue;
    const origin = await readOrigin(cacheFile(dest, entry, "state"));
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
      const handle = await open(paths.lock, CREATE_EXCLUSIVE, 0o644);
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      return () => rm(paths.lock, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const pid = Number(((await readStateFile(paths.lock, 64)) ?? "").toString().trim());
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
