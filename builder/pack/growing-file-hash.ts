import { createHash } from "node:crypto";
import { type FileHandle, open } from "node:fs/promises";

/** How long to wait before looking again when the writer has not appended anything new. */
const POLL_MS = 10;
const READ_SIZE = 1 << 20;

/**
 * The sha256 of a file another process is still appending to (a compressor program writing its
 * output). It reads what has been written so far, waits a little when it has caught up, and once
 * told the writer is done, reads the rest. Hashing the 49 MB tar.zst of a Debian minbase after
 * zstd exited took 50 ms at the end of every pack; following it, the digest is ready a few
 * milliseconds after the compressor exits.
 */
export class GrowingFileHash {
  private readonly hash = createHash("sha256");
  private size = 0;
  private writerDone = false;
  private cancelled = false;
  private wake: (() => void) | undefined;
  private readonly result: Promise<{ hex: string; size: number }>;

  constructor(path: string) {
    this.result = open(path, "r").then((handle) => this.follow(handle));
    this.result.catch(() => {});
  }

  private async follow(handle: FileHandle): Promise<{ hex: string; size: number }> {
    const buffer = Buffer.allocUnsafe(READ_SIZE);
    try {
      for (;;) {
        if (this.cancelled) throw new Error("output hashing cancelled");
        // Read the flag first: the writer may finish between an empty read and the check.
        const done = this.writerDone;
        const { bytesRead } = await handle.read(buffer, 0, READ_SIZE, this.size);
        if (bytesRead > 0) {
          this.hash.update(buffer.subarray(0, bytesRead));
          this.size += bytesRead;
        } else if (done) {
          return { hex: this.hash.digest("hex"), size: this.size };
        } else {
          await new Promise<void>((resolve) => {
            this.wake = resolve;
            setTimeout(resolve, POLL_MS);
          });
        }
      }
    } finally {
      await handle.close();
    }
  }

  /** Call once the writer has exited (its output is complete): hashes the rest and returns. */
  digest(): Promise<{ hex: string; size: number }> {
    this.writerDone = true;
    this.wake?.();
    return this.result;
  }

  /** The output is being thrown away: stop following it. */
  cancel(): void {
    this.cancelled = true;
    this.wake?.();
  }
}
