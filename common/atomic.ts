import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/**
 * A file that becomes visible at its final name only when complete: data goes to a hidden
 * temporary name in the same directory (so rename is atomic) and is renamed on commit.
 */
export class AtomicFile {
  readonly tempPath: string;
  constructor(readonly finalPath: string) {
    this.tempPath = join(
      dirname(finalPath),
      `.${basename(finalPath)}.${randomBytes(6).toString("hex")}.partial`,
    );
  }
  async commit(): Promise<void> {
    await rename(this.tempPath, this.finalPath);
  }
  async abort(): Promise<void> {
    await rm(this.tempPath, { force: true });
  }
}

/**
 * Creates a file that must not exist yet, never through a symlink: what someone planted at the
 * name (a link to /etc/passwd, say) makes it fail with EEXIST instead of being written through.
 */
export const CREATE_EXCLUSIVE =
  constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o666): Promise<void> {
  const file = new AtomicFile(path);
  let created = false;
  try {
    const handle = await open(file.tempPath, CREATE_EXCLUSIVE, mode);
    created = true;
    try {
      await handle.writeFile(data);
    } finally {
      await handle.close();
    }
    await file.commit();
  } catch (err) {
    // Only a temp file we created is ours to remove; a planted one is left for whoever looks.
    if (created) await file.abort();
    throw err;
  }
}
