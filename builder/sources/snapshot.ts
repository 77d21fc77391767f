import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { runTool } from "../exec.js";
import type { SourceResult } from "./source.js";

/**
 * Snapshots of a source's output in the cache (`<cache>/rootfs/<key>.tar` + `.json`), so a
 * rebuild whose inputs are all unchanged skips the package installation entirely. The key is a
 * sha256 over everything the source's output depends on, which the method supplies; for
 * debootstrap that includes the sha256 of the archive's current InRelease, so any change in the
 * archive (a new package version) is a miss and a normal build. A snapshot is written only from
 * a successful source stage, with GNU tar (numeric ids, xattrs, ACLs), under a temporary name.
 */
const KEEP = 6;

export function snapshotKey(inputs: unknown): string {
  return createHash("sha256").update(JSON.stringify(inputs)).digest("hex");
}

const TAR_OPTIONS = ["--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls"];

/** Restores a snapshot into the empty `root`; resolves to its source result, or undefined on a miss. */
export async function restoreSnapshot(
  cacheDir: string,
  key: string,
  root: string,
  signal: AbortSignal,
): Promise<SourceResult | undefined> {
  const base = join(cacheDir, "rootfs", key);
  const meta = await readFile(`${base}.json`, "utf8").catch(() => undefined);
  if (meta === undefined || !(await stat(`${base}.tar`).catch(() => undefined))) return undefined;
  await runTool("tar", [...TAR_OPTIONS, "-xpf", `${base}.tar`, "-C", root], {
    what: "restoring the rootfs snapshot",
    signal,
  });
  const now = new Date();
  await utimes(`${base}.json`, now, now).catch(() => undefined);
  const result = JSON.parse(meta) as SourceResult;
  return { ...result, fetched: { files: 0, bytes: 0 } };
}

export async function saveSnapshot(
  cacheDir: string,
  key: string,
  root: string,
  result: SourceResult,
  signal: AbortSignal,
): Promise<void> {
  const dir = join(cacheDir, "rootfs");
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.${key}.${process.pid}.partial`);
  try {
    await runTool("tar", [...TAR_OPTIONS, "-cf", tmp, "-C", root, "."], {
      what: "saving the rootfs snapshot",
      signal,
    });
    await rename(tmp, join(dir, `${key}.tar`));
    await writeFile(`${tmp}.json`, JSON.stringify({ manifest: result.manifest }));
    await rename(`${tmp}.json`, join(dir, `${key}.json`));
  } finally {
    await rm(tmp, { force: true });
    await rm(`${tmp}.json`, { force: true });
  }
  await prune(dir);
}

/** Keeps the most recently used snapshots only (they are large). */
async function prune(dir: string): Promise<void> {
  const metas = (await readdir(dir)).filter((n) => n.endsWith(".json") && !n.startsWith("."));
  const dated = await Promise.all(
    metas.map(async (n) => ({ key: n.slice(0, -5), mtime: (await stat(join(dir, n))).mtimeMs })),
  );
  dated.sort((a, b) => b.mtime - a.mtime);
  for (const old of dated.slice(KEEP)) {
    await rm(join(dir, `${old.key}.json`), { force: true });
    await rm(join(dir, `${old.key}.tar`), { force: true });
  }
}
