import type { Dirent, Stats } from "node:fs";
import { constants } from "node:fs";
import { lstat, mkdir, open, readdir, readlink, rm, symlink, writeFile } from "node:fs/promises";
import { join, posix } from "node:path";
import { UserError } from "../common/errors.js";

/**
 * Every access to the root being built, from the host side, goes through this file. The root
 * comes from an upstream archive or from packages, so any path in it may be a symlink, and an
 * absolute one (`var/lib/dpkg -> /var/lib/dpkg`) names a file of the ROOT: opened from the host
 * with join(root, ...), it would be the build host's own file instead (its package list read
 * into the manifest, its /etc/shadow edited). So paths are resolved the way they would be after
 * chroot: absolute targets start at the root, `..` stops at the root, nothing outside the root is
 * ever touched. Nothing runs in the root while the host reads or edits it, so the tree does not
 * change between a resolution and its use.
 */

/**
 * `root` joined with plain names only: refuses (as a UserError) an empty name, `.`, `..`, a
 * slash or a NUL, which would name the root itself, its parent or something else than what the
 * caller checked. Every host path of something inside the root is made by this.
 */
export function joinInRoot(root: string, parts: readonly string[]): string {
  for (const part of parts) {
    if (part === "" || part === "." || part === ".." || part.includes("/") || part.includes("\0")) {
      throw new UserError(`${JSON.stringify(parts.join("/"))} is not a path inside the root`);
    }
  }
  return join(root, ...parts);
}

const MAX_LINKS = 40;

async function resolveInRoot(root: string, path: string, followLast: boolean): Promise<string> {
  let parts: string[] = [];
  let pending = posix.normalize(`/${path}`).split("/").filter(Boolean);
  let hops = 0;
  while (pending.length > 0) {
    const [head, ...rest] = pending;
    pending = rest;
    if (head === "." || head === "") continue;
    if (head === "..") {
      parts.pop();
      continue;
    }
    const hostPath = joinInRoot(root, [...parts, head!]);
    if (pending.length === 0 && !followLast) {
      parts.push(head!);
      break;
    }
    const info = await lstat(hostPath).catch(() => undefined);
    if (info?.isSymbolicLink()) {
      if (++hops > MAX_LINKS) throw new UserError(`${path}: too many symbolic links inside the root`);
      const target = await readlink(hostPath);
      if (target.startsWith("/")) parts = [];
      pending = [...target.split("/").filter(Boolean), ...pending];
      continue;
    }
    parts.push(head!);
  }
  return joinInRoot(root, parts);
}

/**
 * Host path for `path` as the root would see it: symlinks in the directories on the way are
 * followed the way they would be after chroot. The last component itself is not followed:
 * writers replace it (a symlink there is removed, not written through), lstat sees the link.
 */
export function pathInRoot(root: string, path: string): Promise<string> {
  return resolveInRoot(root, path, false);
}

/**
 * Host path for `path` with every symlink followed inside the root, the last one too (what
 * open() or stat() of that path gives after chroot): nothing in it is a symlink. For readers.
 */
export function realPathInRoot(root: string, path: string): Promise<string> {
  return resolveInRoot(root, path, true);
}

/** The stat() of `path` inside the root (symlinks followed inside it). */
export async function statInRoot(root: string, path: string): Promise<Stats> {
  return lstat(await realPathInRoot(root, path));
}

/** The lstat() of `path` inside the root: a symlink there is the link itself. */
export async function lstatInRoot(root: string, path: string): Promise<Stats> {
  return lstat(await pathInRoot(root, path));
}

/** The entries of the directory `path` inside the root (symlinks on the way followed inside it). */
export async function readdirInRoot(root: string, path: string): Promise<Dirent[]> {
  return readdir(await realPathInRoot(root, path), { withFileTypes: true });
}

// O_NOFOLLOW: the resolved path has no symlink left; one there now is refused, not followed.
// O_NONBLOCK: a fifo at that path must not hang the build (it is then refused as not a file).
const READ_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
const EDIT_FLAGS = constants.O_WRONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

async function openRegular(root: string, path: string, flags: number) {
  const handle = await open(await realPathInRoot(root, path), flags);
  try {
    if (!(await handle.stat()).isFile()) throw new UserError(`${path} in the root is not a regular file`);
    return handle;
  } catch (err) {
    await handle.close();
    throw err;
  }
}

/** Reads the regular file at `path` inside the root (symlinks followed inside it). */
export async function readFileInRoot(root: string, path: string): Promise<Buffer>;
export async function readFileInRoot(root: string, path: string, encoding: "utf8"): Promise<string>;
export async function readFileInRoot(
  root: string,
  path: string,
  encoding?: "utf8",
): Promise<Buffer | string> {
  const handle = await openRegular(root, path, READ_FLAGS);
  try {
    return encoding ? await handle.readFile(encoding) : await handle.readFile();
  } finally {
    await handle.close();
  }
}

/**
 * Rewrites the existing regular file at `path` inside the root in place (symlinks followed
 * inside it), so its owner, mode and other links stay: for edits such as locking root in
 * /etc/shadow. Use replaceFile to create or replace a file.
 */
export async function rewriteFileInRoot(root: string, path: string, content: string): Promise<void> {
  const handle = await openRegular(root, path, EDIT_FLAGS);
  try {
    await handle.truncate(0);
    await handle.writeFile(content, "utf8");
  } finally {
    await handle.close();
  }
}

/** Writes a file in the root, replacing whatever was at that path (never writing through a symlink). */
export async function replaceFile(
  root: string,
  path: string,
  content: string | Uint8Array,
  mode = 0o644,
): Promise<string> {
  const target = await pathInRoot(root, path);
  await mkdir(join(target, ".."), { recursive: true });
  await rm(target, { force: true });
  await writeFile(target, content, { mode, flag: "wx" });
  return target;
}

export async function replaceSymlink(root: string, path: string, linkTarget: string): Promise<void> {
  const target = await pathInRoot(root, path);
  await mkdir(join(target, ".."), { recursive: true });
  await rm(target, { force: true, recursive: true });
  await symlink(linkTarget, target);
}

/** Removes `path` inside the root (a symlink there itself, a directory with its contents). */
export async function removeInRoot(root: string, path: string): Promise<void> {
  const target = await pathInRoot(root, path);
  if (target === root) throw new UserError(`${path}: refusing to remove the root itself`);
  await rm(target, { recursive: true, force: true });
}

/** Removes the entries of the directory `path` inside the root that `keep` does not keep. */
export async function emptyDirInRoot(
  root: string,
  path: string,
  keep: (name: string) => boolean = () => false,
): Promise<void> {
  const dir = await realPathInRoot(root, path);
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (!keep(name)) await rm(joinInRoot(dir, [name]), { recursive: true, force: true });
  }
}

export async function existsInRoot(root: string, path: string): Promise<boolean> {
  return (await lstatInRoot(root, path).catch(() => undefined)) !== undefined;
}
