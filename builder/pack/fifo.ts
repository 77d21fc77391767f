import { execFile } from "node:child_process";
import { closeSync, constants, openSync } from "node:fs";
import { tmpdir } from "node:os";
import { promisify } from "node:util";
import { UserError } from "../../common/errors.js";

/** Node has no mkfifo(3); coreutils' mkfifo is everywhere tar is. One run makes them all. */
export async function makeFifos(paths: string[]): Promise<void> {
  if (paths.length === 0) return;
  try {
    await promisify(execFile)("mkfifo", ["-m", "600", ...paths]);
  } catch (err) {
    throw new UserError(`cannot make a fifo in ${tmpdir()}: ${(err as Error).message.split("\n")[0]}`);
  }
}

/**
 * Lets opens of `fifo` that still wait in the libuv pool for the other end return: opening the
 * other end without blocking completes them (the waiting side then sees EOF or EPIPE). `waiting`
 * names the ends that may be waiting; a fifo nobody waits on, or one already gone, is fine.
 */
export function releasePendingOpens(fifo: string, waiting: "reader" | "writer" | "both"): void {
  const ends: number[] = [];
  if (waiting !== "writer") ends.push(constants.O_WRONLY); // a writer releases a waiting reader
  if (waiting !== "reader") ends.push(constants.O_RDONLY);
  for (const end of ends) {
    try {
      closeSync(openSync(fifo, end | constants.O_NONBLOCK));
    } catch {
      // nobody waits on this end, or the fifo is gone
    }
  }
}
