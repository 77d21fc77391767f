/** One `templar` sub-command. Modules are loaded only when their command runs, to keep start-up fast. */
export interface Command {
  /** Usage and options, printed by `templar <command> --help`. */
  help: string;
  /** Runs the command; resolves to the process exit code. */
  run(argv: string[]): Promise<number>;
}

export interface CommandEntry {
  summary: string;
  load: () => Promise<Command>;
}
