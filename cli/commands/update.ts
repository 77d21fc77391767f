import { hostPull } from "../../client/host/host-pull.js";
import { localTemplates, updateRef } from "../../client/host/local-templates.js";
import { RegistryClient } from "../../client/http.js";
import { ExitCode, errorMessage, UserError, usageError } from "../../common/errors.js";
import { parseCommandArgs } from "../args.js";
import type { Command } from "../command.js";
import { hostSettings } from "../host-settings.js";
import { clientTuning } from "../settings.js";

const help = `Usage: templar update [NAME...] [--all] [--dest DIR] [--keyring FILE] [--allow-unsigned]
                      [--delta auto|always|never] [--no-delta] [--json]

Brings templates pulled into the local template cache up to date, like 'vztmpl-dl --update-all':
for each one, the reference it was pulled with is resolved again (a tag or range keeps its
meaning; an exact version moves to the newest release) and a newer version is pulled, verified
as 'templar pull' does. Templates already current are left alone. A newer version whose
artifact is identical to the one held is said so and recorded as the version held (the file is
not downloaded again; on Proxmox, whose file names carry the version, it is fetched under the
new name and the old file removed). Otherwise a newer version comes as a delta patch from the
cached one when the registry has it (see 'templar pull --help').

  NAME...           the templates to update; --all: every template in the cache
  --registry URL    ask this registry instead of the one each template came from
  --token T         token, for registries without anonymous pull (default: $TEMPLAR_TOKEN)
  --dest DIR        template cache (default: $TEMPLAR_DEST, host config, else /vz/template/cache,
                    or /var/lib/vz/template/cache with --proxmox)
  --keyring FILE    trusted public keys (default: $TEMPLAR_KEYRING, host config, /etc/templar/trusted.asc)
  --allow-unsigned  accept templates without a signature
  --proxmox         the cache is a Proxmox host's
  --delta MODE      auto (default): a patch when it pays; always: any patch; never (or TEMPLAR_DELTA,
                    or 'delta: MODE' in the host config; see 'templar pull --help')
  --no-delta        the same as --delta never
  --delta-max-window N  refuse patches whose zstd window exceeds 2^N bytes (default 30; or
                    TEMPLAR_DELTA_MAX_WINDOW, or 'deltaMaxWindow: N' in the host config)
  --json            one JSON object per template

Exit codes: 0 all current, else the code of the first failure (3 verification, 4 not found).`;

export const command: Command = {
  help,
  async run(argv) {
    const { values, positionals } = parseCommandArgs("update", argv, {
      all: { type: "boolean" },
      registry: { type: "string" },
      token: { type: "string" },
      dest: { type: "string" },
      keyring: { type: "string" },
      "allow-unsigned": { type: "boolean" },
      proxmox: { type: "boolean" },
      json: { type: "boolean" },
      delta: { type: "string" },
      "no-delta": { type: "boolean" },
      "delta-max-window": { type: "string" },
    });
    if (positionals.length === 0 && !values.all)
      throw usageError("update: name the templates to update, or pass --all (see 'templar update --help')");
    const settings = await hostSettings(values);
    const entries = await localTemplates(settings.dest, values.all ? [] : positionals);
    const missing = positionals.filter((n) => !entries.some((e) => e.origin.name === n));
    if (missing.length > 0)
      throw new UserError(
        `update: not pulled into ${settings.dest}: ${missing.join(", ")}`,
        ExitCode.notFound,
      );

    let exit: number = ExitCode.ok;
    for (const entry of entries) {
      const { origin } = entry;
      const client = new RegistryClient({
        registry: values.registry ?? settings.registry ?? origin.registry,
        token: settings.token,
        ...clientTuning(),
      });
      try {
        const result = await hostPull(client, updateRef(origin), {
          dest: settings.dest,
          proxmox: entry.proxmox,
          format: entry.format,
          keyring: settings.keyring,
          allowUnsigned: settings.allowUnsigned,
          delta: settings.delta,
          ...(settings.deltaMaxWindow ? { maxWindowLog: settings.deltaMaxWindow } : {}),
          onNote: (note) => {
            if (!values.json) process.stderr.write(`${origin.name}: ${note}\n`);
          },
        });
        if (values.json) {
          process.stdout.write(`${JSON.stringify({ ...result, previous: origin.version })}\n`);
        } else if (result.sameContentAs !== undefined) {
          process.stdout.write(
            `${origin.name}: ${result.version} has the same content as ${result.sameContentAs}; now recorded as ${result.version} (${result.path})\n`,
          );
        } else if (result.upToDate || result.version === origin.version) {
          process.stdout.write(`${origin.name}: ${origin.version} is current\n`);
        } else {
          const how = result.via === "delta" ? `, delta of ${result.transferred} bytes` : "";
          process.stdout.write(
            `${origin.name}: ${origin.version} -> ${result.version} (${result.path}${how})\n`,
          );
        }
      } catch (err) {
        // One template failing does not stop the others; the exit code reports it.
        process.stderr.write(`templar: update ${origin.name}: ${errorMessage(err)}\n`);
        if (exit === ExitCode.ok) exit = err instanceof UserError ? err.exitCode : ExitCode.failure;
      }
    }
    return exit;
  },
};
