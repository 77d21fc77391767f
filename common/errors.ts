/**
 * An error the user can act on: printed as one line, never with a stack trace.
 * `exitCode` follows the table in docs/cli.md ("Exit codes").
 */
export class UserError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = "UserError";
  }
}

/** Exit codes shared by every command (docs/cli.md). */
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
  verification: 3,
  notFound: 4,
} as const;

export function usageError(message: string): UserError {
  return new UserError(message, ExitCode.usage);
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
