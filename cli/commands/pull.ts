import { ExitCode, usageError } from "../../common/errors.js";
import type { Format } from "../../common/manifest.js";
import { createProgress } from "../../common/progress.js";
import { DEFAULT_CACHE } from "../../registry/client/cache.js";
import { pullTemplate } from "../../registry/client/pull.js";
import { parseRef } from "../../registry/client/ref.js";
import { flagOrEnv, parseCommandArgs } from "../args.js";
import type { Command } from "../command.js";
import { registryClient } from "../registry-flags.js";
import { clearingBarOnError } from "../terminal.js";

const help = `Usage: templar pull <ref> [--registry URL] [--dest DIR] [--format gz|xz|zst] [--json]

Downloads a template into a host's template cache as <name>.tar.<ext>, verified against its
manifest's sha256 while it streams; the file appears only once complete and verified.
<ref> is name, name@1.2.3, name@<tag> or name@<range> (quote ranges: 'debian-13-x86_64@^13').

An interrupted download is kept as .templar/<name>.tar.<ext>.<digest>.partial in the
destination and resumed by the next pull of the same artifact; .templar/ also keeps the manifest
(<file>.manifest.json) and where it came from (<file>.origin.json) for templar list and update.

Options:
  --registry URL   registry base URL (default: $TEMPLAR_REGISTRY)
  --token T        token, when the registry does not allow anonymous pulls (default: $TEMPLAR_TOKEN)
  --dest DIR       template cache (default: $TEMPLAR_CACHE, else ${DEFAULT_CACHE})
  --format F       gz (default: what vzctl reads), xz or zst (Proxmox)
  --json           print the result as JSON

Environment: TEMPLAR_RETRIES attempts without progress before giving up (default 5),
TEMPLAR_HTTP_TIMEOUT_MS idle time before a connection counts as broken (default 60000).
Exit codes: 0 ok (also when already up to date), 3 digest mismatch, 4 not found.`;

const FORMAT_NAMES: Record<string, Format> = {
  gz: "tar.gz",
  xz: "tar.xz",
  zst: "tar.zst",
  "tar.gz": "tar.gz",
  "tar.xz": "tar.xz",
  "tar.zst": "tar.zst",
};

export const command: Command = {
  help,
  async run(argv) {
    const { values, positionals } = parseCommandArgs("pull", argv, {
      registry: { type: "string" },
      token: { type: "string" },
      dest: { type: "string" },
      format: { type: "string" },
      json: { type: "boolean" },
    });
    if (positionals.length !== 1)
      throw usageError("pull: expected one template reference (see 'templar pull --help')");
    const ref = parseRef(positionals[0]!);
    const format = FORMAT_NAMES[values.format ?? "gz"];
    if (!format) throw usageError(`pull: --format ${JSON.stringify(values.format)}: expected gz, xz or zst`);
    const client = registryClient("pull", values);
    const dest = flagOrEnv(values.dest, "TEMPLAR_CACHE", DEFAULT_CACHE)!;

    let progress: ReturnType<typeof createProgress> | null = null;
    const result = await clearingBarOnError(() =>
      pullTemplate(client, ref, {
        dest,
        format,
        onProgress: (received, total) => {
          progress ??= createProgress(`pull ${ref.name}`, { total, enabled: !values.json });
          progress.update(received);
        },
      }),
    );
    if (values.json) {
      process.stdout.write(`${JSON.stringify(result)}\n`);
    } else if (result.upToDate) {
      process.stdout.write(`${result.name}@${result.version}: ${result.path} is up to date\n`);
    } else {
      (progress as ReturnType<typeof createProgress> | null)?.finish("verified");
      process.stdout.write(`pulled ${result.name}@${result.version} (${result.digest}) to ${result.path}\n`);
    }
    return ExitCode.ok;
  },
};
