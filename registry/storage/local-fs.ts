import { type Stats, statSync } from "node:fs";
import { open, readdir, stat } from "node:fs/promises";
import type { ObjectInfo } from "./driver.js";

/** Filesystem helpers of the local-directory backend (local.ts). */

/**
 * A listed object whose size and time are read (one stat) only when asked for: resolving a range
 * over 10,000 versions needs the keys, not 10,000 stats (100-450 ms on a busy host). A file
 * deleted between listing and the stat reads as empty and old.
 */
export class ListedFile implements ObjectInfo {
  private st: Stats | null | undefined;
  constructor(
    readonly key: string,
    private readonly path: string,
  ) {}
  private stat() {
    if (this.st === undefined) this.st = statSync(this.path, { throwIfNoEntry: false }) ?? null;
    return this.st;
  }
  get size(): number {
    return this.stat()?.size ?? 0;
  }
  get modified(): Date {
    return this.stat()?.mtime ?? new Date(0);
  }
  toJSON(): { key: string; size: number; modified: Date } {
    return { key: this.key, size: this.size, modified: this.modified };
  }
}

export function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === "ENOENT";
}

export function isNotDir(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === "ENOTDIR";
}

export async function statOrNull(path: string) {
  try {
    return await stat(path);
  } catch (err) {
    if (isNotFound(err) || isNotDir(err)) return null;
    throw err;
  }
}

export async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (isNotFound(err) || isNotDir(err)) return [];
    throw err;
  }
}

/** Makes a rename or link durable: the directory entry itself must reach the disk. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } catch {
    // Some filesystems refuse fsync on directories; the data itself is already synced.
  } finally {
    await handle.close();
  }
}
