import { unwatchFile, watchFile } from "node:fs";
import { readFile } from "node:fs/promises";
import type { Server } from "node:https";
import { createSecureContext } from "node:tls";
import { errorMessage, UserError } from "../common/errors.js";

/** Where the registry's certificate chain and private key are (PEM files). */
export interface TlsFiles {
  cert: string;
  key: string;
}

export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
}

/**
 * Reads the pair and checks that it makes a usable TLS context (the key matches the
 * certificate), so a wrong file is named at start-up, not at the first handshake.
 */
export async function loadTls(files: TlsFiles): Promise<TlsMaterial> {
  const read = async (path: string, what: string) => {
    try {
      return await readFile(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new UserError(
        `TLS ${what} ${path}: ${code === "ENOENT" ? "no such file" : errorMessage(err)}`,
        4,
      );
    }
  };
  const material = { cert: await read(files.cert, "certificate"), key: await read(files.key, "key") };
  try {
    createSecureContext(material);
  } catch (err) {
    throw new UserError(`TLS certificate ${files.cert} and key ${files.key}: ${errorMessage(err)}`);
  }
  return material;
}

/**
 * Re-reads the pair when either file changes (a certificate renewal replaces them) and hands
 * the new context to the server; connections already open keep theirs. A pair that does not
 * load (a renewal half-written, a key that does not match yet) is logged and the last good one
 * kept; the next change tries again. Returns the function that stops watching.
 */
export function reloadOnChange(
  server: Server,
  files: TlsFiles,
  log: (entry: Record<string, unknown>) => void,
  intervalMs = 2000,
): () => void {
  let pending: Promise<void> = Promise.resolve();
  const reload = () => {
    pending = pending.then(async () => {
      try {
        server.setSecureContext(await loadTls(files));
        log({ time: new Date().toISOString(), event: "tls-reloaded", cert: files.cert });
      } catch (err) {
        log({ time: new Date().toISOString(), event: "tls-reload-failed", error: errorMessage(err) });
      }
    });
  };
  // watchFile polls stat(): it follows a path through renames and symlink swaps (certbot's
  // live/ links), which fs.watch on the old inode would miss.
  const options = { interval: intervalMs, persistent: false };
  watchFile(files.cert, options, reload);
  watchFile(files.key, options, reload);
  return () => {
    unwatchFile(files.cert, reload);
    unwatchFile(files.key, reload);
  };
}
