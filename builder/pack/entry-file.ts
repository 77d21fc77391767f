import { type BigIntStats, closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import { UserError } from "../../common/errors.js";
import type { WalkEntry } from "./walk.js";

/**
 * Reading the data of a regular file the walk listed, making sure it is still that file. The tree
 * may change between the walk's lstat and the read (the walk runs ahead of the writer, and a tree
 * someone else can write to changes whenever it likes): a file replaced by a symlink must not
 * make the pack read the link's target (a root-only file would land in a world-readable tar), and
 * a file that grew must not be silently cut to the listed size. So the open does not follow a
 * symlink, and an fstat of the open file, once its data is read, must show the inode, type and
 * size the walk saw; anything else fails the pack naming the path. That fstat is the one system
 * call this adds per file (identity and size in one); files larger than the output chunk are
 * checked before their first byte is handed on as well.
 */

// O_NOATIME: reading the tree must not change it (root may use it on any file).
// O_NOFOLLOW: a symlink swapped in after the walk fails the open (ELOOP) instead of being followed.
// O_NONBLOCK: a fifo swapped in opens at once (the fstat then refuses it) instead of hanging the
// pack; it changes nothing for regular files.
const SAFE_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
const OPEN_FLAGS = SAFE_FLAGS | (constants.O_NOATIME ?? 0);

function pathOf(entry: WalkEntry): string {
  return entry.tarPath.toString("utf8");
}

function changed(entry: WalkEntry, now: string): UserError {
  return new UserError(
    `${pathOf(entry)} changed while it was being packed (${now}, not the file that was listed)`,
  );
}

function readFailure(err: unknown, entry: WalkEntry): UserError {
  const e = err as NodeJS.ErrnoException;
  if (e.code === "ELOOP") return changed(entry, "it is a symlink now");
  const why = e.code === "EACCES" || e.code === "EPERM" ? "permission denied" : (e.code ?? e.message);
  return new UserError(`cannot read ${pathOf(entry)}: ${why}`);
}

/** Opens the regular file of `entry` for reading, never through a symlink. */
export function openEntry(entry: WalkEntry): number {
  try {
    return openSync(entry.abs, OPEN_FLAGS);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    // O_NOATIME is refused (EPERM) on files of other users unless we have CAP_FOWNER.
    if (e.code === "EPERM" && OPEN_FLAGS !== SAFE_FLAGS) {
      try {
        return openSync(entry.abs, SAFE_FLAGS);
      } catch (again) {
        throw readFailure(again, entry);
      }
    }
    throw readFailure(err, entry);
  }
}

/** Throws unless the open file is still the regular file the walk listed, at its listed size. */
export function checkUnchanged(fd: number, entry: WalkEntry): void {
  let now: BigIntStats;
  try {
    now = fstatSync(fd, { bigint: true });
  } catch (err) {
    throw readFailure(err, entry);
  }
  const was = entry.stat;
  if (!now.isFile()) throw changed(entry, "it is no longer a regular file");
  if (now.ino !== was.ino || now.dev !== was.dev) throw changed(entry, "another file is at its path now");
  if (now.size !== was.size) {
    throw new UserError(
      `${pathOf(entry)} ${now.size > was.size ? "grew" : "shrank"} while it was being packed (${was.size} bytes when listed, ${now.size} now)`,
    );
  }
}

/** Reads up to `want` bytes; a read error or an early end says first whether the file was swapped. */
export function readSome(
  fd: number,
  entry: WalkEntry,
  into: Buffer,
  at: number,
  want: number,
  position: number,
): number {
  let got: number;
  try {
    got = readSync(fd, into, at, want, position);
  } catch (err) {
    checkUnchanged(fd, entry);
    throw readFailure(err, entry);
  }
  if (got === 0) {
    checkUnchanged(fd, entry);
    throw new UserError(`${pathOf(entry)} shrank while it was being packed`);
  }
  return got;
}

/**
 * Reads a whole file of `length` bytes into `into` at `at` (the caller made room), then checks it
 * is still the file the walk listed: nothing of it has left this process yet.
 */
export function readWhole(entry: WalkEntry, length: number, into: Buffer, at: number): void {
  // Empty files are opened too, so an unreadable file is reported whatever its size.
  const fd = openEntry(entry);
  try {
    for (let done = 0; done < length; ) done += readSome(fd, entry, into, at + done, length - done, done);
    checkUnchanged(fd, entry);
  } finally {
    closeSync(fd);
  }
}
