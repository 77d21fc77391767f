import type { ErrorCode } from "./error-codes.js";

/**
 * The OCI Distribution API's error codes (distribution-spec v1.1 "Error Codes"), with the status
 * the registry answers them with, and the one mapping from templar's own codes
 * (common/error-codes.ts) to them: /v2 answers `{ "errors": [{ "code", "message", "detail" }] }`
 * from this table alone.
 */
export const OCI_ERROR_CODES = {
  BLOB_UNKNOWN: { status: 404, what: "blob unknown to registry" },
  BLOB_UPLOAD_INVALID: { status: 400, what: "blob upload invalid" },
  BLOB_UPLOAD_UNKNOWN: { status: 404, what: "blob upload unknown to registry" },
  DIGEST_INVALID: { status: 400, what: "provided digest did not match uploaded content" },
  MANIFEST_BLOB_UNKNOWN: { status: 404, what: "manifest references a manifest or blob unknown to registry" },
  MANIFEST_INVALID: { status: 400, what: "manifest invalid" },
  MANIFEST_UNKNOWN: { status: 404, what: "manifest unknown to registry" },
  NAME_INVALID: { status: 400, what: "invalid repository name" },
  NAME_UNKNOWN: { status: 404, what: "repository name not known to registry" },
  SIZE_INVALID: { status: 400, what: "provided length did not match content length" },
  UNAUTHORIZED: { status: 401, what: "authentication required" },
  DENIED: { status: 403, what: "requested access to the resource is denied" },
  UNSUPPORTED: { status: 405, what: "the operation is unsupported (this registry is pull-only over /v2)" },
  TOOMANYREQUESTS: { status: 429, what: "too many requests" },
  // not in the spec's list; distribution answers a bad ?n= with it
  PAGINATION_NUMBER_INVALID: { status: 400, what: "invalid number of results requested" },
} as const satisfies Record<string, { status: number; what: string }>;

export type OciErrorCode = keyof typeof OCI_ERROR_CODES;

/**
 * Templar's codes as an OCI client reads them. The status stays templar's; a code with no OCI
 * counterpart (a 416 for a range outside a blob, a 503 for storage trouble) is answered as
 * `UNKNOWN`, as distribution does for errors outside the spec's list.
 */
export const OCI_CODE_OF: Partial<Record<ErrorCode, OciErrorCode>> = {
  NAME_INVALID: "NAME_INVALID",
  VERSION_INVALID: "MANIFEST_UNKNOWN",
  TAG_INVALID: "MANIFEST_UNKNOWN",
  REFERENCE_INVALID: "MANIFEST_UNKNOWN",
  DIGEST_INVALID: "DIGEST_INVALID",
  UNAUTHORIZED: "UNAUTHORIZED",
  DENIED: "DENIED",
  NOT_FOUND: "NAME_UNKNOWN",
  TEMPLATE_UNKNOWN: "NAME_UNKNOWN",
  VERSION_UNKNOWN: "MANIFEST_UNKNOWN",
  TAG_UNKNOWN: "MANIFEST_UNKNOWN",
  BLOB_UNKNOWN: "BLOB_UNKNOWN",
  ARTIFACT_UNKNOWN: "BLOB_UNKNOWN",
};
