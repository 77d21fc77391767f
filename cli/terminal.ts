/**
 * Runs `work`; if it fails while a progress bar is on the terminal, clears the bar's line first
 * so the one-line error the dispatcher prints starts on a clean line.
 */
export async function clearingBarOnError<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (process.stderr.isTTY) process.stderr.write("\r\x1b[K");
    throw err;
  }
}
