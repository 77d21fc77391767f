import { loadRecipe } from "../../builder/load-recipe.js";
import { ExitCode, errorMessage, UserError, usageError } from "../../common/errors.js";
import { parseCommandArgs } from "../args.js";
import type { Command } from "../command.js";

const help = `Usage: templar recipe lint <recipe>... [--json]

Loads and validates recipes without building: YAML syntax, known keys and types, extends:,
the source method's and every step's settings. Each problem is printed as file:line:column.
Exit status 1 when any recipe is invalid.
`;

async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== "lint") throw usageError(`recipe: expected a sub-command: lint (see 'templar recipe --help')`);
  const { values, positionals } = parseCommandArgs("recipe lint", rest, { json: { type: "boolean" } });
  if (positionals.length === 0) throw usageError("recipe lint: expected at least one recipe file");
  const report: { recipe: string; ok: boolean; templates?: string[]; error?: string }[] = [];
  let exit: number = ExitCode.ok;
  for (const file of positionals) {
    try {
      const recipes = await loadRecipe(file);
      report.push({ recipe: file, ok: true, templates: recipes.map((r) => `${r.name}@${r.version}`) });
    } catch (err) {
      if (!(err instanceof UserError)) throw err;
      report.push({ recipe: file, ok: false, error: errorMessage(err) });
      // The first failure's code: a missing file is "not found", a bad recipe a failure.
      if (exit === ExitCode.ok) exit = err.exitCode;
    }
  }
  if (values.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else {
    for (const r of report) {
      if (r.ok) process.stdout.write(`${r.recipe}: ok (${r.templates!.join(", ")})\n`);
      else process.stderr.write(`templar: ${r.error}\n`);
    }
  }
  return exit;
}

export const command: Command = { help, run };
