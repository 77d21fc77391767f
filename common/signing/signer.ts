import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { writeFileAtomic } from "../atomic.js";
import { ExitCode, UserError } from "../errors.js";

/** Something that makes detached armoured signatures: a key file, or the maintainer's gpg agent. */
export interface Signer {
  /** For messages: "key ABCD..." or "gpg key ...". */
  readonly description: string;
  signBytes(data: Uint8Array): Promise<string>;
  signFile(path: string): Promise<string>;
}

export interface SignerOptions {
  /** `--sign-key FILE`: an armoured OpenPGP secret key. */
  keyFile?: string;
  /** `--passphrase-file FILE`; else `passphrase`. */
  passphraseFile?: string;
  /** The passphrase itself (the CLI passes $TEMPLAR_SIGN_PASSPHRASE). */
  passphrase?: string | undefined;
  /** `--sign-with gpg:KEYID`. */
  signWith?: string;
}

/** Returns the signer the flags ask for, or null when no signing was asked for. */
export async function openSigner(options: SignerOptions): Promise<Signer | null> {
  if (options.keyFile && options.signWith) throw new UserError("use --sign-key or --sign-with, not both");
  if (options.signWith) {
    const match = /^gpg:(.+)$/.exec(options.signWith);
    if (!match) throw new UserError(`--sign-with ${options.signWith}: expected gpg:KEYID`);
    return gpgSigner(match[1]!);
  }
  if (!options.keyFile) return null;
  const passphrase = options.passphraseFile
    ? (
        await readFile(options.passphraseFile, "utf8").catch((err: NodeJS.ErrnoException) => {
          const missing = err.code === "ENOENT";
          throw new UserError(
            `passphrase file ${options.passphraseFile}: ${missing ? "no such file" : err.message}`,
            missing ? ExitCode.notFound : ExitCode.failure,
          );
        })
      ).replace(/\r?\n$/, "")
    : options.passphrase;
  // openpgp.js is loaded only when a key file is used: it costs ~40 ms of start-up otherwise.
  const [{ fingerprintOf, readPrivateKeyFile }, { signBytes, signFile }] = await Promise.all([
    import("./keys.js"),
    import("./signatures.js"),
  ]);
  const key = await readPrivateKeyFile(options.keyFile, passphrase);
  return {
    description: `key ${fingerprintOf(key)}`,
    signBytes: (data) => signBytes(key, data),
    signFile: (path) => signFile(key, path),
  };
}

function gpgSigner(keyId: string): Signer {
  const run = (args: string[], input?: Uint8Array): Promise<string> =>
    new Promise((resolve, reject) => {
      const child = spawn(
        "gpg",
        ["--batch", "--yes", "--armor", "--detach-sign", "--local-user", keyId, "--output", "-", ...args],
        {
          stdio: ["pipe", "pipe", "pipe"],
        },
      );
      const out: Buffer[] = [];
      let err = "";
      child.stdout.on("data", (c: Buffer) => out.push(c));
      child.stderr.on("data", (c: Buffer) => {
        err += c.toString();
      });
      child.on("error", (e) => reject(new UserError(`gpg: ${e.message} (is gnupg installed?)`)));
      child.on("close", (code) => {
        if (code === 0) resolve(Buffer.concat(out).toString("utf8"));
        else
          reject(
            new UserError(
              `gpg could not sign with key ${keyId}: ${err.trim().split("\n").pop() ?? `exit ${code}`}`,
            ),
          );
      });
      child.stdin.end(input);
    });
  return {
    description: `gpg key ${keyId}`,
    signBytes: (data) => run([], data),
    signFile: (path) => run([path]),
  };
}

/** Writes `<file>.asc` beside each file (manifest and artifacts), each atomically. */
export async function signFiles(signer: Signer, paths: string[]): Promise<string[]> {
  const written: string[] = [];
  for (const path of paths) {
    const signature = await signer.signFile(path);
    await writeFileAtomic(`${path}.asc`, signature);
    written.push(`${path}.asc`);
  }
  return written;
}
