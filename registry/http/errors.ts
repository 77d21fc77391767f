import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { CodedError, type ErrorCode } from "../../common/error-codes.js";
import { UserError } from "../../common/errors.js";

/**
 * Every error the API answers: `{ "error": { "code", "message" } }` with the status that
 * common/error-codes.ts gives the code. Handlers and the store throw CodedError; anything else
 * is a registry bug or a storage failure, answered 500 and logged with its stack.
 */
export function errorBody(code: ErrorCode, message: string) {
  return { error: { code, message } };
}

/** Maps anything thrown by a handler to the JSON error response. */
export function toErrorResponse(c: Context, err: unknown): Response {
  const coded = asCoded(err);
  for (const [k, v] of Object.entries(coded.headers)) c.header(k, v);
  if (coded.status >= 500) c.set("errorDetail" as never, (err as Error)?.stack ?? String(err));
  return c.json(errorBody(coded.code, coded.message), coded.status as ContentfulStatusCode);
}

function asCoded(err: unknown): CodedError {
  if (err instanceof CodedError) return err;
  if (err instanceof UserError) return new CodedError("INVALID", err.message);
  return new CodedError("INTERNAL", "internal error; see the registry log");
}
