import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { UserError } from "../common/errors.js";
import { DigestMismatchError, UploadNotFoundError, UploadOffsetError } from "./storage/storage.js";

/**
 * Every error the API answers, as DESIGN.md fixes it: `{ "error": { "code", "message" } }` with
 * the right status. Handlers throw ApiError; onError maps it (and storage errors) to a response.
 */
export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export const badRequest = (code: string, message: string) => new ApiError(400, code, message);
export const notFound = (code: string, message: string) => new ApiError(404, code, message);

export function errorBody(code: string, message: string) {
  return { error: { code, message } };
}

/** Maps anything thrown by a handler to the JSON error response. */
export function toErrorResponse(c: Context, err: unknown): Response {
  const api = asApiError(err);
  for (const [k, v] of Object.entries(api.headers)) c.header(k, v);
  if (api.status >= 500) c.set("errorDetail" as never, (err as Error)?.stack ?? String(err));
  return c.json(errorBody(api.code, api.message), api.status);
}

function asApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof DigestMismatchError) return badRequest("DIGEST_INVALID", err.message);
  if (err instanceof UploadNotFoundError) return notFound("UPLOAD_UNKNOWN", err.message);
  if (err instanceof UploadOffsetError) {
    const kind = err.got < err.expected ? "overlaps bytes already received" : "leaves a gap";
    return new ApiError(416, "RANGE_INVALID", `${err.message} (the chunk ${kind})`, {
      "Upload-Offset": String(err.expected),
      Range: `0-${Math.max(0, err.expected - 1)}`,
    });
  }
  if (err instanceof UserError) return badRequest("INVALID", err.message);
  return new ApiError(500, "INTERNAL", "internal error; see the registry log");
}
