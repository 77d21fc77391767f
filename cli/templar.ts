#!/usr/bin/env node
import { ExitCode, errorMessage, UserError } from "../common/errors.js";
import { commands } from "./commands/index.js";

const USAGE = `templar: OS templates for OpenVZ and Proxmox

Usage: templar <command> [options]   (templar <command> --help for details)

Commands:
${Object.entries(commands)
  .map(([name, entry]) => `  ${name.padEnd(14)}${entry.summary}`)
  .join("\n")}
`;

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(USAGE);
    return name === undefined ? ExitCode.usage : ExitCode.ok;
  }
  if (name === "--version") {
    process.stdout.write("templar 0.1.0\n");
    return ExitCode.ok;
  }
  const entry = commands[name];
  if (!entry) {
    process.stderr.write(`templar: unknown command '${name}' (see 'templar --help')\n`);
    return ExitCode.usage;
  }
  const command = await entry.load();
  if (rest.includes("--help") || rest.includes("-h")) {
    process.stdout.write(command.help.endsWith("\n") ? command.help : `${command.help}\n`);
    return ExitCode.ok;
  }
  return command.run(rest);
}

// A command whose promise never settles (a bug: nothing left to wait for) must not exit 0.
let settled = false;
process.on("exit", (code) => {
  if (!settled && code === 0) {
    process.stderr.write("templar: internal error: the command stopped before it finished\n");
    process.exitCode = ExitCode.failure;
  }
});

main(process.argv.slice(2)).then(
  (code) => {
    settled = true;
    process.exitCode = code;
  },
  (err: unknown) => {
    settled = true;
    if (err instanceof UserError) {
      process.stderr.write(`templar: ${err.message}\n`);
      process.exitCode = err.exitCode;
    } else {
      // Unexpected: still one line; the stack only when asked for.
      process.stderr.write(`templar: internal error: ${errorMessage(err)}\n`);
      if (process.env.TEMPLAR_DEBUG) process.stderr.write(`${(err as Error)?.stack ?? ""}\n`);
      process.exitCode = ExitCode.failure;
    }
  },
);
