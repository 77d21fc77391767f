import { lstat, mkdir, readlink, rm, symlink, writeFile } from "node:fs/promises";
import { join, posix } from "node:path";
import { UserError } from "../common/errors.js";

/**
 * Host path for `path` as the root would see it: symlinks in the directories on the way are
 * followed the way they would be after chroot (absolute targets start at the root, `..` stops
 * at the root), so nothing outside the root is ever touched. The last component itself is not
 * followed: writers replace it (a symlink there is removed, not written through).
 */
export async function pathInRoot(root: string, path: string): Promise<string> {
  const wanted = posix.normalize(`/${path}`).split("/").filter(Boolean);
  const last = wanted.pop();
  if (last === undefined) return root;
  let parts: string[] = [];
  let pending = wanted;
  let hops = 0;
  while (pending.length > 0) {
    const [head, ...rest] = pending;
    pending = rest;
    if (head === "." || head === "") continue;
    if (head === "..") {
      parts.pop();
      continue;
    }
    const hostPath = join(root, ...parts, head!);
    const info = await lstat(hostPath).catch(() => undefined);
    if (info?.isSymbolicLink()) {
      if (++hops > 40) throw new UserError(`${path}: too many symbolic links inside the root`);
      const target = await readlink(hostPath);
      if (target.startsWith("/")) parts = [];
      pending = [...target.split("/").filter(Boolean), ...pending];
      continue;
    }
    parts.push(head!);
  }
  return join(root, ...parts, last);
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

export async function existsInRoot(root: string, path: string): Promise<boolean> {
  return (await lstat(await pathInRoot(root, path)).catch(() => undefined)) !== undefined;
}
