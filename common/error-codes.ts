import { ExitCode } from "./errors.js";

/**
 * Every error code the registry answers with (`{ "error": { "code", "message" } }`), with its
 * HTTP status and the exit code a templar command reports when the registry answers it. The
 * registry maps its errors to responses from this table alone; clients match codes from it,
 * never as string literals of their own. docs/http-api.md lists them for users.
 */
export const ERROR_CODES = {
  // requests that name something malformed
  NAME_INVALID: { status: 400, exit: ExitCode.usage, what: "a template name that breaks the naming rules" },
  VERSION_INVALID: { status: 400, exit: ExitCode.usage, what: "a version that is not strict semver" },
  TAG_INVALID: { status: 400, exit: ExitCode.usage, what: "a tag that breaks the tag rules" },
  REFERENCE_INVALID: { status: 400, exit: ExitCode.usage, what: "neither a version, a tag nor a range" },
  DIGEST_INVALID: {
    status: 400,
    exit: ExitCode.verification,
    what: "not sha256:<hex>, or bytes that do not hash to it",
  },
  FORMAT_INVALID: {
    status: 400,
    exit: ExitCode.usage,
    what: "an artifact format other than tar.zst, tar.gz, tar.xz",
  },
  MANIFEST_INVALID: {
    status: 400,
    exit: ExitCode.failure,
    what: "a manifest that does not parse or does not match the URL",
  },
  SIGNATURE_INVALID: { status: 400, exit: ExitCode.failure, what: "not an armoured OpenPGP signature" },
  CONTENT_RANGE_INVALID: {
    status: 400,
    exit: ExitCode.failure,
    what: "an upload chunk's range does not add up",
  },
  LIMIT_INVALID: { status: 400, exit: ExitCode.usage, what: "a bad ?limit=" },
  INVALID: { status: 400, exit: ExitCode.failure, what: "a request the registry cannot take as it is" },
  // who may do what
  UNAUTHORIZED: { status: 401, exit: ExitCode.failure, what: "no token, or an unknown one" },
  DENIED: { status: 403, exit: ExitCode.failure, what: "the token lacks the scope" },
  SIGNATURE_REQUIRED: {
    status: 403,
    exit: ExitCode.verification,
    what: "the push policy wants a signed manifest",
  },
  SIGNATURE_UNTRUSTED: {
    status: 403,
    exit: ExitCode.verification,
    what: "signed by a key the push policy does not trust",
  },
  // things that are not there
  NOT_FOUND: { status: 404, exit: ExitCode.notFound, what: "no such route or file" },
  TEMPLATE_UNKNOWN: { status: 404, exit: ExitCode.notFound, what: "no template of that name" },
  VERSION_UNKNOWN: { status: 404, exit: ExitCode.notFound, what: "no such version (or no version matches)" },
  TAG_UNKNOWN: { status: 404, exit: ExitCode.notFound, what: "no such tag" },
  BLOB_UNKNOWN: {
    status: 404,
    exit: ExitCode.notFound,
    what: "no such blob (400 when a pushed manifest names it)",
  },
  ARTIFACT_UNKNOWN: {
    status: 404,
    exit: ExitCode.notFound,
    what: "the version has no artifact of that format",
  },
  SIGNATURE_UNKNOWN: { status: 404, exit: ExitCode.notFound, what: "not signed" },
  UPLOAD_UNKNOWN: {
    status: 404,
    exit: ExitCode.failure,
    what: "no such upload (completed, aborted or expired)",
  },
  CHANNEL_UNKNOWN: { status: 404, exit: ExitCode.notFound, what: "no such vztmpl-dl channel" },
  INDEX_UNSIGNED: { status: 404, exit: ExitCode.notFound, what: "the registry has no index key" },
  // conflicts and limits
  VERSION_EXISTS: { status: 409, exit: ExitCode.failure, what: "the version exists with other content" },
  SIGNATURE_EXISTS: { status: 409, exit: ExitCode.failure, what: "another signature is already stored" },
  TOO_LARGE: { status: 413, exit: ExitCode.failure, what: "a body over the limit" },
  RANGE_INVALID: {
    status: 416,
    exit: ExitCode.failure,
    what: "a range outside the blob, or an upload offset that differs",
  },
  // the registry cannot serve right now
  INTERNAL: { status: 500, exit: ExitCode.failure, what: "a registry bug or storage failure (see its log)" },
  TRY_AGAIN: {
    status: 503,
    exit: ExitCode.failure,
    what: "a push took too long between its checks: push again",
  },
  GC_IN_PROGRESS: {
    status: 503,
    exit: ExitCode.failure,
    what: "a blob is being garbage-collected: push again",
  },
  STORAGE_UNAVAILABLE: { status: 503, exit: ExitCode.failure, what: "storage does not answer" },
  POLICY_UNAVAILABLE: { status: 503, exit: ExitCode.failure, what: "the push policy's keys cannot be read" },
  INDEX_KEY_UNAVAILABLE: { status: 503, exit: ExitCode.failure, what: "the index key cannot be read" },
} as const satisfies Record<string, { status: number; exit: number; what: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CODES, code);
}

/**
 * An error with a code from the table: what the registry's store and HTTP layer throw. The HTTP
 * layer answers it with the table's status (or `status` where a request makes the same fact a
 * bad request: a manifest naming a missing blob is a 400 BLOB_UNKNOWN) and these extra headers.
 */
export class CodedError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly headers: Record<string, string> = {},
    status?: 400,
  ) {
    super(message);
    this.name = "CodedError";
    this.status = status ?? ERROR_CODES[code].status;
  }
}
