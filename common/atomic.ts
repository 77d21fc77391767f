import { randomBytes } from "node:crypto";
import { rename, rm, writeFile } from "node:fs/promises";
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

export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const file = new AtomicFile(path);
  try {
    await writeFile(file.tempPath, data);
    await file.commit();
  } catch (err) {
    await file.abort();
    throw err;
  }
}
