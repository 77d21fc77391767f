import { templatePath } from "../../client/http.js";
import { ExitCode, usageError } from "../../common/errors.js";
import { isTag, templateNameProblem } from "../../common/names.js";
import { parseRef } from "../../common/reference.js";
import { parseCommandArgs } from "../args.js";
import type { Command } from "../command.js";
import { registryClient } from "../registry-flags.js";

const options = { registry: { type: "string" }, token: { type: "string" } } as const;

function checkTag(command: string, tag: string): string {
  if (!isTag(tag))
    throw usageError(
      `${command}: ${JSON.stringify(tag)} is not a tag (lower case letters, digits, '.', '_', '-')`,
    );
  return tag;
}

export const command: Command = {
  help: `Usage: templar tag NAME@VERSION TAG --registry URL [--token T]

Points TAG of template NAME at VERSION on a registry (creating or moving it), so that hosts
pulling NAME@TAG get that version. 'latest' follows the highest release unless set.

Options:
  --registry URL   registry base URL (default: $TEMPLAR_REGISTRY)
  --token T        a token with scope push:<glob> covering NAME (default: $TEMPLAR_TOKEN)

Exit codes: 0 tagged, 2 usage, 4 no such template or version.`,
  async run(argv) {
    const { values, positionals } = parseCommandArgs("tag", argv, options);
    if (positionals.length !== 2)
      throw usageError("tag: expected NAME@VERSION TAG (see 'templar tag --help')");
    const ref = parseRef(positionals[0]!);
    if (ref.kind !== "version" || !positionals[0]!.includes("@"))
      throw usageError(`tag: ${JSON.stringify(positionals[0])}: name an exact version, NAME@1.2.3`);
    const tag = checkTag("tag", positionals[1]!);
    const client = registryClient("tag", values);
    const reply = await client.request("PUT", templatePath(ref.name, "tags", tag), {
      what: `tag ${ref.name}@${ref.ref} ${tag}`,
      idempotent: true,
      headers: { "content-type": "text/plain" },
      body: Buffer.from(ref.ref),
    });
    reply.discard();
    process.stdout.write(`${ref.name}@${tag} -> ${ref.ref} on ${client.display}\n`);
    return ExitCode.ok;
  },
};

export const untag: Command = {
  help: `Usage: templar untag NAME TAG --registry URL [--token T]

Removes TAG from template NAME on a registry. Removing 'latest' makes it follow the highest
release again.

Options:
  --registry URL   registry base URL (default: $TEMPLAR_REGISTRY)
  --token T        a token with scope push:<glob> covering NAME (default: $TEMPLAR_TOKEN)

Exit codes: 0 removed, 2 usage, 4 no such template or tag.`,
  async run(argv) {
    const { values, positionals } = parseCommandArgs("untag", argv, options);
    if (positionals.length !== 2) throw usageError("untag: expected NAME TAG (see 'templar untag --help')");
    const name = positionals[0]!;
    const problem = templateNameProblem(name);
    if (problem) throw usageError(`untag: template name ${JSON.stringify(name)} ${problem}`);
    const tag = checkTag("untag", positionals[1]!);
    const client = registryClient("untag", values);
    const reply = await client.request("DELETE", templatePath(name, "tags", tag), {
      what: `untag ${name} ${tag}`,
      idempotent: true,
    });
    reply.discard();
    process.stdout.write(`removed tag ${tag} of ${name} from ${client.display}\n`);
    return ExitCode.ok;
  },
};
