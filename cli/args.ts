import { type ParseArgsConfig, parseArgs } from "node:util";
import { usageError } from "../common/errors.js";

type Options = NonNullable<ParseArgsConfig["options"]>;

export interface ParsedArgs<O extends Options> {
  values: {
    [K in keyof O]?: O[K] extends { type: "boolean" }
      ? boolean
      : O[K] extends { multiple: true }
        ? string[]
        : string;
  };
  positionals: string[];
}

/**
 * Parses a command's arguments with node:util parseArgs, turning its errors into one-line usage
 * errors that name the command. `--help` is handled by the dispatcher before this is called.
 */
export function parseCommandArgs<O extends Options>(
  command: string,
  argv: string[],
  options: O,
): ParsedArgs<O> {
  try {
    const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
    return { values: values as ParsedArgs<O>["values"], positionals };
  } catch (err) {
    // parseArgs explains some errors over several lines; the first one says what is wrong.
    const first = (err as Error).message.split("\n")[0]!;
    const message = first.replace(/\. To specify a positional argument.*$/, "");
    throw usageError(`${command}: ${message} (see 'templar ${command} --help')`);
  }
}
