import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { usageError } from "../../common/errors.js";
import { newToken } from "../../registry/auth.js";
import { addTokenToConfig, SCOPE } from "../../registry/config.js";
import { parseCommandArgs } from "../args.js";
import type { Command } from "../command.js";
import { registryConfigPath, registryStorage } from "../settings.js";

const help = `Usage: templar token create --scope SCOPE [--scope SCOPE]... [--storage DIR | --config FILE] [--note TEXT]

Creates a registry token, stores only its sha256 in the config file, and prints the token
once, as the last line of output. A running 'templar serve' picks it up within a second.

Scopes: pull:<glob>, push:<glob>, delete:<glob>, admin   (glob over template names: * and ?)
  e.g. --scope 'push:debian-*' --scope 'pull:*'

Options:
  --storage DIR  the registry's storage directory: the token goes into its config file,
                 DIR/templar-registry.yaml, the one 'templar serve --storage DIR' reads
                 (default ./data; env TEMPLAR_STORAGE)
  --config FILE  or name the registry's config file (env TEMPLAR_CONFIG; needed for S3 storage)
  --note TEXT    a reminder of who or what the token is for`;

export const command: Command = {
  help,
  async run(argv) {
    const { values, positionals } = parseCommandArgs("token", argv, {
      scope: { type: "string", multiple: true },
      config: { type: "string" },
      storage: { type: "string" },
      note: { type: "string" },
    });
    if (positionals[0] !== "create" || positionals.length > 1) {
      throw usageError(
        "token: expected 'templar token create --scope SCOPE...' (see 'templar token --help')",
      );
    }
    const scopes = values.scope ?? [];
    if (scopes.length === 0)
      throw usageError("token create: at least one --scope is needed, e.g. --scope 'push:*'");
    for (const scope of scopes) {
      if (!SCOPE.test(scope)) {
        throw usageError(
          `token create: scope ${JSON.stringify(scope)} must be admin, pull:<glob>, push:<glob> or delete:<glob>`,
        );
      }
    }
    const path = registryConfigPath(values.config, registryStorage(values.storage));
    await mkdir(dirname(path), { recursive: true });
    const { token, id, sha256 } = newToken();
    await addTokenToConfig(path, {
      id,
      sha256,
      scopes,
      created: new Date().toISOString(),
      ...(values.note ? { note: values.note } : {}),
    });
    process.stderr.write(
      `token ${id} with scopes ${scopes.join(", ")} added to ${path}; it is shown only now:\n`,
    );
    process.stdout.write(`${token}\n`);
    return 0;
  },
};
