import { chmod, mkdir, readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { writeFileAtomic } from "../../common/atomic.js";
import { usageError } from "../../common/errors.js";
import { generateSigningKey } from "../../common/signing/keys.js";
import { parseCommandArgs } from "../args.js";
import type { Command } from "../command.js";
import { env } from "../settings.js";

const DEFAULT_PREFIX = "keys/maintainer";

const help = `Usage: templar key generate --name NAME [--email ADDR] [--out PREFIX] [--passphrase-file FILE]

Makes an OpenPGP signing key pair (Ed25519) for a template maintainer or a registry's index key.
Writes PREFIX.key.asc (secret, mode 0600) and PREFIX.pub.asc (public: give it to hosts and to the
registry's push policy) and prints the fingerprint. PREFIX defaults to ./keys/maintainer (the
folder is made private; keep it out of version control).

  --name NAME             user id name, e.g. "Example Templates"
  --email ADDR            user id e-mail
  --out PREFIX            where to write the two files
  --passphrase-file FILE  protect the secret key with the passphrase in FILE
                          (else TEMPLAR_SIGN_PASSPHRASE, else unprotected)`;

async function run(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  if (verb !== "generate")
    throw usageError("key: expected 'templar key generate' (see 'templar key --help')");
  const { values } = parseCommandArgs("key generate", rest, {
    name: { type: "string" },
    email: { type: "string" },
    out: { type: "string" },
    "passphrase-file": { type: "string" },
  });
  if (!values.name) throw usageError("key generate: --name is required");
  const passphrase = values["passphrase-file"]
    ? (await readFile(values["passphrase-file"], "utf8")).replace(/\r?\n$/, "")
    : env("TEMPLAR_SIGN_PASSPHRASE");
  const key = await generateSigningKey(
    { name: values.name, ...(values.email ? { email: values.email } : {}) },
    passphrase,
  );
  const prefix = values.out ?? DEFAULT_PREFIX;
  const secretPath = `${prefix}.key.asc`;
  // The secret half is never readable by others, not even for a moment.
  await mkdir(dirname(resolve(secretPath)), { recursive: true, mode: 0o700 });
  await writeFileAtomic(secretPath, key.privateKeyArmored, 0o600);
  await chmod(secretPath, 0o600);
  await writeFileAtomic(`${prefix}.pub.asc`, key.publicKeyArmored);
  process.stdout.write(
    `secret key: ${secretPath}\npublic key: ${prefix}.pub.asc\nfingerprint: ${key.fingerprint}\n`,
  );
  return 0;
}

export const command: Command = { help, run };
