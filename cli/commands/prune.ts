import { localTemplates, removeLocal } from "../../client/host/local-templates.js";
import { RegistryClient, templatePath } from "../../client/http.js";
import { ExitCode, errorMessage, UserError } from "../../common/errors.js";
import { parseCommandArgs } from "../args.js";
import type { Command } from "../command.js";
import { hostSettings } from "../host-settings.js";
import { clientTuning } from "../settings.js";

const help = `Usage: templar prune [--dry-run] [--dest DIR] [--registry URL] [--json]

Removes templates from the local template cache that their registry no longer has (the
template was deleted there). Only files 'templar pull' put there are considered; a registry that
cannot be reached removes nothing.

  --dry-run         say what would be removed, remove nothing
  --dest DIR        template cache (default: $TEMPLAR_DEST, host config, else /vz/template/cache,
                    or /var/lib/vz/template/cache with --proxmox)
  --registry URL    ask this registry instead of the one each template came from
  --token T         token, for registries without anonymous pull (default: $TEMPLAR_TOKEN)
  --proxmox         the cache is a Proxmox host's
  --json            one JSON object per template removed`;

export const command: Command = {
  help,
  async run(argv) {
    const { values } = parseCommandArgs("prune", argv, {
      "dry-run": { type: "boolean" },
      dest: { type: "string" },
      registry: { type: "string" },
      token: { type: "string" },
      proxmox: { type: "boolean" },
      json: { type: "boolean" },
    });
    const settings = await hostSettings(values);
    let exit: number = ExitCode.ok;
    const entries = await localTemplates(settings.dest);
    let removed = 0;
    for (const entry of entries) {
      const { origin } = entry;
      const client = new RegistryClient({
        registry: values.registry ?? settings.registry ?? origin.registry,
        token: settings.token,
        ...clientTuning(),
      });
      try {
        const response = await client.request("GET", templatePath(origin.name), {
          what: `prune ${origin.name}`,
          idempotent: true,
          accept: [404],
        });
        response.discard();
        if (response.status !== 404) continue;
        if (!values["dry-run"]) await removeLocal(settings.dest, entry);
        removed++;
        const verb = values["dry-run"] ? "would remove" : "removed";
        if (values.json) {
          process.stdout.write(
            `${JSON.stringify({ name: origin.name, version: origin.version, path: entry.path, removed: !values["dry-run"] })}\n`,
          );
        } else {
          process.stdout.write(
            `${verb} ${entry.path} (${origin.name}@${origin.version}: gone from ${client.display})\n`,
          );
        }
      } catch (err) {
        process.stderr.write(`templar: prune ${origin.name}: ${errorMessage(err)}\n`);
        if (exit === ExitCode.ok) exit = err instanceof UserError ? err.exitCode : ExitCode.failure;
      }
    }
    if (!values.json && removed === 0 && exit === ExitCode.ok) {
      process.stdout.write(
        entries.length === 0
          ? `nothing to prune: no templates pulled into ${settings.dest}\n`
          : `nothing to prune: the registry still has all ${entries.length} template(s) in ${settings.dest}\n`,
      );
    }
    return exit;
  },
};
