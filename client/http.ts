import type { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { ERROR_CODES, isErrorCode } from "../common/error-codes.js";
import { ExitCode, UserError } from "../common/errors.js";
import type { TemplateRef } from "../common/reference.js";
import { displayUrl, type Reply, send } from "./transport.js";

/**
 * The HTTP client that push, pull, list and mirror share. It knows the registry's base
 * URL and bearer token, turns the registry's JSON error bodies into one-line UserErrors, and
 * retries idempotent requests on connection errors and 5xx answers with exponential backoff.
 *
 * The token is only ever put into the Authorization header: it is never part of a message, and
 * URLs are shown without user info, so nothing we print can leak it.
 */
export interface RegistryClientOptions {
  /** Base URL of the registry, e.g. http://127.0.0.1:8080 (a path prefix is kept). */
  registry: string;
  token?: string | undefined;
  /** Attempts for idempotent requests (first try included); default 5. */
  attempts?: number | undefined;
  /** First backoff delay in ms, doubled each retry (with jitter), capped at 5 s. */
  backoffMs?: number;
  /** Idle time on a connection before it counts as broken; default 60 s. */
  timeoutMs?: number | undefined;
  /** Bytes per upload PATCH; default: the whole blob in one (resumed where a cut left it). */
  chunkSize?: number | undefined;
}

export interface RequestOptions {
  headers?: Record<string, string>;
  /** A Buffer (retried when idempotent) or a stream (sent once). */
  body?: Buffer | Readable | null;
  /** Safe to send again after a connection error or 5xx (GET, HEAD, PUT of fixed bytes...). */
  idempotent?: boolean;
  /** Statuses handed back to the caller instead of turned into an error (2xx always are). */
  accept?: number[];
  /** Says what the request is for, as the start of error lines ("push debian-13@13.2.0"). */
  what?: string;
}

/** The API path of a reference's manifest: /v1/templates/{name}/{ref}. */
export function manifestPath(ref: TemplateRef): string {
  return templatePath(ref.name, ref.ref);
}

/** `v1/templates/<part>/<part>...`, each part URL-encoded (names, versions, tags, ranges). */
export function templatePath(...parts: string[]): string {
  return `v1/templates/${parts.map(encodeURIComponent).join("/")}`;
}

/** An error answer from the registry; `status` and `code` let callers react to specific cases. */
export class RegistryError extends UserError {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
    exitCode: number,
  ) {
    super(message, exitCode);
    this.name = "RegistryError";
  }
}

/** Errors thrown by fetch itself (refused, reset, DNS...) and by aborted body streams. */
export function isConnectionError(err: unknown): boolean {
  if (err instanceof UserError) return false;
  if (!(err instanceof Error)) return false;
  if (err.name === "AbortError" && !(err as { retryable?: boolean }).retryable) return false;
  return true;
}

/** A short reason for a connection error: the system error code when there is one. */
export function connectionReason(err: unknown): string {
  const direct = (err as { code?: unknown })?.code;
  if (typeof direct === "string" && direct) return direct;
  const cause = (err as { cause?: { code?: string; message?: string } })?.cause;
  return cause?.code ?? cause?.message ?? (err as Error)?.message ?? String(err);
}

// Defined beside Reply, which names URLs in its own errors; re-exported for everyone else.
export { displayUrl } from "./transport.js";

/** The exit code for an error answer: the error code table's, else by status (404: not found). */
function exitCodeFor(status: number, code: string): number {
  if (isErrorCode(code)) return ERROR_CODES[code].exit;
  if (status === 404) return ExitCode.notFound;
  return ExitCode.failure;
}

export class RegistryClient {
  readonly base: URL;
  readonly attempts: number;
  readonly timeoutMs: number;
  readonly chunkSize: number;
  private readonly backoffMs: number;
  readonly #token: string | undefined;

  constructor(options: RegistryClientOptions) {
    let base: URL;
    try {
      base = new URL(options.registry);
    } catch {
      throw new UserError(
        `registry URL ${JSON.stringify(displayUrl(options.registry))} is not a valid URL`,
        2,
      );
    }
    if (base.protocol !== "http:" && base.protocol !== "https:") {
      throw new UserError(`registry URL must start with http:// or https:// (got ${base.protocol})`, 2);
    }
    if (base.username || base.password) {
      throw new UserError(
        "registry URL must not contain credentials: pass the token with --token or TEMPLAR_TOKEN",
        2,
      );
    }
    if (!base.pathname.endsWith("/")) base.pathname += "/";
    this.base = base;
    this.#token = options.token || undefined;
    this.attempts = options.attempts ?? 5;
    this.backoffMs = options.backoffMs ?? 250;
    this.timeoutMs = options.timeoutMs ?? 60_000;
    this.chunkSize = options.chunkSize ?? Number.POSITIVE_INFINITY;
  }

  get hasToken(): boolean {
    return this.#token !== undefined;
  }

  /** Absolute URL for an API path such as "v1/blobs/sha256:..." (leading slash optional). */
  url(path: string): URL {
    return new URL(path.replace(/^\//, ""), this.base);
  }

  /** The registry as shown to users: no credentials, no trailing slash. */
  get display(): string {
    return displayUrl(this.base);
  }

  /** Waits before retry number `attempt` (1-based): 250 ms, 500 ms, 1 s ... up to 5 s, with jitter. */
  async backoff(attempt: number): Promise<void> {
    const delay = Math.min(5000, this.backoffMs * 2 ** (attempt - 1));
    await sleep(delay / 2 + Math.random() * (delay / 2));
  }

  /** Headers every request carries; the token goes nowhere else. */
  headers(extra: Record<string, string> = {}): Record<string, string> {
    const headers: Record<string, string> = { "user-agent": "templar/0.1", ...extra };
    if (this.#token) headers.authorization = `Bearer ${this.#token}`;
    return headers;
  }

  /**
   * Sends one request. Returns the Reply for 2xx and for statuses in `accept`; throws a
   * RegistryError for other statuses and a UserError when the registry cannot be reached.
   * Only idempotent requests with a Buffer body (or none) are retried.
   */
  async request(method: string, path: string, options: RequestOptions = {}): Promise<Reply> {
    const url = this.url(path);
    const what = options.what ? `${options.what}: ` : "";
    const body = options.body ?? null;
    const retryable = options.idempotent && (body === null || Buffer.isBuffer(body));
    const attempts = retryable ? this.attempts : 1;
    let lastProblem = "";
    for (let attempt = 1; attempt <= attempts; attempt++) {
      if (attempt > 1) await this.backoff(attempt - 1);
      let reply: Reply;
      try {
        const headers = this.headers(options.headers);
        if (Buffer.isBuffer(body)) headers["content-length"] = String(body.length);
        reply = await send(url, { method, headers, body, timeoutMs: this.timeoutMs });
      } catch (err) {
        if (!isConnectionError(err)) throw err;
        lastProblem = `cannot reach registry ${this.display} (${connectionReason(err)})`;
        continue;
      }
      if (reply.ok || options.accept?.includes(reply.status)) return reply;
      if (reply.status >= 500 && attempt < attempts) {
        lastProblem = `registry said ${reply.status}`;
        reply.discard();
        continue;
      }
      throw await this.errorFrom(reply, what);
    }
    throw new UserError(`${what}${lastProblem}${attempts > 1 ? ` (after ${attempts} attempts)` : ""}`);
  }

  /** GET of a JSON document, retried like every idempotent request. */
  async getJson(path: string, what?: string): Promise<unknown> {
    const response = await this.request("GET", path, {
      idempotent: true,
      headers: { accept: "application/json" },
      ...(what ? { what } : {}),
    });
    const text = await response.text();
    try {
      return JSON.parse(text);
    } catch {
      throw new UserError(
        `${what ? `${what}: ` : ""}registry answered ${path} with something that is not JSON`,
      );
    }
  }

  /** GET of a small document that may be absent (a manifest, a signature): null on 404. */
  async getOptional(path: string, what: string, limit: number): Promise<Buffer | null> {
    const reply = await this.request("GET", path, { what, idempotent: true, accept: [404] });
    if (reply.status === 404) {
      reply.discard();
      return null;
    }
    return reply.buffer(limit, what);
  }

  /** Builds "registry said 409 version_exists: <message>" from an error answer. */
  async errorFrom(response: Reply, what = ""): Promise<RegistryError> {
    let code = statusCode(response.status);
    let message = response.statusText || "";
    try {
      const text = (await response.buffer(64 * 1024)).toString("utf8");
      const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
      if (typeof body?.error?.code === "string") code = body.error.code;
      if (typeof body?.error?.message === "string") message = body.error.message;
    } catch {
      // Not our JSON error shape (a proxy's HTML page, say): status and reason phrase suffice.
    }
    const oneLine = message.replace(/[\r\n]+/g, " ").slice(0, 500);
    let hint = "";
    if (response.status === 401) {
      hint = this.#token ? " (the token was refused)" : " (no token: pass --token or set TEMPLAR_TOKEN)";
    } else if (response.status === 403) {
      hint = " (the token lacks the scope for this)";
    }
    return new RegistryError(
      `${what}registry said ${response.status} ${code}${oneLine ? `: ${oneLine}` : ""}${hint}`,
      response.status,
      code,
      exitCodeFor(response.status, code),
    );
  }
}

function statusCode(status: number): string {
  const names: Record<number, string> = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    413: "too_large",
    416: "range_not_satisfiable",
  };
  return names[status] ?? (status >= 500 ? "server_error" : "error");
}

/** Whether a failed attempt at a transfer is worth another try (network trouble, 5xx, 408, 429). */
export function isRetryable(err: unknown): boolean {
  if (err instanceof RegistryError) return err.status >= 500 || err.status === 408 || err.status === 429;
  if (err instanceof UserError) return err.message.includes("cannot reach registry");
  return isConnectionError(err);
}
