import { templatePath } from "../../client/http.js";
import { ExitCode, usageError } from "../../common/errors.js";
import { parseRef } from "../../common/reference.js";
import { parseCommandArgs } from "../args.js";
import type { Command } from "../command.js";
import { registryClient } from "../registry-flags.js";

const help = `Usage: templar delete NAME@VERSION --registry URL [--token T]

Deletes one version of a template from a registry: its manifest, signatures and the tags that
point at it (blobs no other version names go at the next garbage collection). Hosts that pulled
it keep their copy; 'templar prune' there removes templates their registry no longer has.
Only an exact version is accepted, never a tag or range.

Options:
  --registry URL   registry base URL (default: $TEMPLAR_REGISTRY)
  --token T        a token with scope delete:<glob> covering NAME (default: $TEMPLAR_TOKEN)

Exit codes: 0 deleted, 2 usage, 4 no such template or version.`;

export const command: Command = {
  help,
  async run(argv) {
    const { values, positionals } = parseCommandArgs("delete", argv, {
      registry: { type: "string" },
      token: { type: "string" },
    });
    if (positionals.length !== 1)
      throw usageError("delete: expected NAME@VERSION (see 'templar delete --help')");
    const ref = parseRef(positionals[0]!);
    if (ref.kind !== "version" || !positionals[0]!.includes("@"))
      throw usageError(`delete: ${JSON.stringify(positionals[0])}: name an exact version, NAME@1.2.3`);
    const client = registryClient("delete", values);
    const reply = await client.request("DELETE", templatePath(ref.name, ref.ref), {
      what: `delete ${ref.name}@${ref.ref}`,
      idempotent: true,
    });
    reply.discard();
    process.stdout.write(`deleted ${ref.name}@${ref.ref} from ${client.display}\n`);
    return ExitCode.ok;
  },
};
