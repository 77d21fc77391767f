import { ExitCode, usageError } from "../../common/errors.js";
import { parseCommandArgs } from "../args.js";
import type { Command } from "../command.js";
import { describe, findings, REQUIREMENTS } from "../preflight.js";

const help = `Usage: templar doctor [COMMAND...] [--json]

Says what this machine lacks to run each command that needs more than Node (${Object.keys(REQUIREMENTS).join(", ")}),
or only the COMMANDs named: every missing program with the Debian package that provides it, and
whether root is needed. The same check runs at the start of those commands, before any work.

Exit codes: 0 nothing required is missing (optional pieces may be), 1 something is, 2 usage.`;

export const command: Command = {
  help,
  async run(argv) {
    const { values, positionals } = parseCommandArgs("doctor", argv, { json: { type: "boolean" } });
    for (const name of positionals) {
      if (!(name in REQUIREMENTS))
        throw usageError(
          `doctor: ${JSON.stringify(name)}: expected one of ${Object.keys(REQUIREMENTS).join(", ")}`,
        );
    }
    const names = positionals.length > 0 ? positionals : Object.keys(REQUIREMENTS);
    let ok = true;
    const report: Record<
      string,
      { missing: string[]; optional: boolean; root: boolean; package: string; line: string }[]
    > = {};
    for (const name of names) {
      const found = findings(name);
      if (found.some((f) => !f.requirement.optional)) ok = false;
      report[name] = found.map((f) => ({
        missing: f.missing,
        optional: Boolean(f.requirement.optional),
        root: Boolean(f.requirement.root),
        package: f.requirement.package,
        line: describe(f),
      }));
    }
    if (values.json) {
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    } else {
      for (const name of names) {
        const found = report[name]!;
        const needed = found.filter((f) => !f.optional);
        const head = needed.length === 0 ? "ready" : "cannot run yet";
        process.stdout.write(`templar ${name}: ${head}\n`);
        for (const f of found) process.stdout.write(`  ${f.optional ? "optional" : "missing "}  ${f.line}\n`);
      }
      const packages = [
        ...new Set(
          names.flatMap((n) => report[n]!.filter((f) => !f.optional && !f.root).map((f) => f.package)),
        ),
      ];
      if (packages.length > 0)
        process.stdout.write(`\nInstall what is missing: apt install ${packages.join(" ")}\n`);
    }
    return ok ? ExitCode.ok : ExitCode.failure;
  },
};
