import { type ParseArgsConfig, parseArgs } from "node:util";
import { parseEpoch } from "../common/epoch.js";
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

/** Reads a flag, then the TEMPLAR_* environment variable, then a fallback (DESIGN: flags, env, config). */
export function flagOrEnv(flag: string | undefined, envName: string, fallback?: string): string | undefined {
  return flag ?? process.env[envName] ?? fallback;
}

/**
 * SOURCE_DATE_EPOCH as the user gave it: `--source-date-epoch`, else the environment variable
 * (reproducible-builds.org); undefined when neither is set.
 */
export function sourceDateEpoch(
  flag: string | undefined,
): { value: number; from: "option" | "environment" } | undefined {
  if (flag !== undefined) return { value: parseEpoch(flag, "--source-date-epoch"), from: "option" };
  const env = process.env.SOURCE_DATE_EPOCH;
  if (env === undefined || env === "") return undefined;
  return { value: parseEpoch(env, "SOURCE_DATE_EPOCH"), from: "environment" };
}
