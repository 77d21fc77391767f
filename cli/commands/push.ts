import { findManifests, loadLocalTemplate, pushTemplate } from "../../client/push.js";
import { ExitCode, usageError } from "../../common/errors.js";
import { createProgress } from "../../common/progress.js";
import { parseCommandArgs } from "../args.js";
import type { Command } from "../command.js";
import { registryClient } from "../registry-flags.js";
import { clearingBarOnError } from "../terminal.js";

const help = `Usage: templar push <out-dir | manifest> --registry URL [--token T] [--json]

Uploads templates to a registry: every *.manifest.json in <out-dir> (or the one manifest given),
the artifacts it names that the registry lacks (resumable uploads), then the manifest and any
signatures (<file>.asc) next to them. Pushing the same template again changes nothing; a version
the registry has with other content is refused (versions are immutable).

Options:
  --registry URL   registry base URL (default: $TEMPLAR_REGISTRY)
  --token T        push token (default: $TEMPLAR_TOKEN); never printed
  --json           print one JSON object per template instead of text

Environment: TEMPLAR_UPLOAD_CHUNK bytes per PATCH (default 256 MiB; lower it behind a proxy
that limits request bodies), TEMPLAR_RETRIES attempts per request (default 5),
TEMPLAR_HTTP_TIMEOUT_MS idle time before a connection counts as broken (default 60000).`;

export const command: Command = {
  help,
  async run(argv) {
    const { values, positionals } = parseCommandArgs("push", argv, {
      registry: { type: "string" },
      token: { type: "string" },
      json: { type: "boolean" },
    });
    if (positionals.length !== 1)
      throw usageError("push: expected one <out-dir | manifest> (see 'templar push --help')");
    const client = registryClient("push", values);

    // Validate every manifest and artifact first, so a bad out/ directory sends nothing.
    const locals = [];
    for (const file of await findManifests(positionals[0]!)) locals.push(await loadLocalTemplate(file));

    for (const local of locals) {
      const label = `push ${local.manifest.name}@${local.manifest.version}`;
      let progress: ReturnType<typeof createProgress> | null = null;
      const result = await clearingBarOnError(() =>
        pushTemplate(client, local, {
          onProgress: (done, total, file) => {
            progress ??= createProgress(label, { total, enabled: !values.json });
            progress.update(done, file);
          },
        }),
      );
      for (const note of result.notes) process.stderr.write(`templar: note: ${note}\n`);
      if (values.json) {
        process.stdout.write(`${JSON.stringify({ ...result, registry: client.display })}\n`);
      } else if (result.unchanged) {
        process.stdout.write(`${label}: already in ${client.display}, nothing to do\n`);
      } else {
        (progress as ReturnType<typeof createProgress> | null)?.finish(
          `(${result.uploaded} blob(s) uploaded, ${local.artifacts.length - result.uploaded} already there)`,
        );
        process.stdout.write(`pushed ${result.name}@${result.version} to ${client.display}\n`);
      }
    }
    return ExitCode.ok;
  },
};
