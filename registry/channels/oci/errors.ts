import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { CodedError } from "../../../common/error-codes.js";
import { OCI_CODE_OF, OCI_ERROR_CODES, type OciErrorCode } from "../../../common/oci-error-codes.js";
import { toErrorResponse } from "../../http/errors.js";

/** An error the /v2 routes answer with one of the spec's codes (common/oci-error-codes.ts). */
export class OciError extends Error {
  readonly status: number;
  constructor(
    readonly code: OciErrorCode,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "OciError";
    this.status = OCI_ERROR_CODES[code].status;
  }
}

/**
 * `{ "errors": [{ "code", "message", "detail" }] }` with the code's status. Templar's own
 * CodedErrors (from the store and the auth checks) are mapped by OCI_CODE_OF, keeping their
 * status and headers; anything else goes through the registry's usual 500 handling.
 */
export function ociErrorResponse(c: Context, err: unknown): Response {
  let code: string;
  let status: number;
  let message: string;
  let headers: Record<string, string>;
  if (err instanceof OciError) {
    ({ code, status, message, headers } = err);
  } else if (err instanceof CodedError) {
    code = OCI_CODE_OF[err.code] ?? "UNKNOWN";
    ({ status, message, headers } = err);
  } else {
    const res = toErrorResponse(c, err);
    return c.json(
      { errors: [{ code: "UNKNOWN", message: "internal error; see the registry log", detail: null }] },
      res.status as ContentfulStatusCode,
    );
  }
  for (const [k, v] of Object.entries(headers)) c.header(k, v);
  if (c.req.method === "HEAD") return c.body(null, status as ContentfulStatusCode);
  return c.json({ errors: [{ code, message, detail: null }] }, status as ContentfulStatusCode);
}
