import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { CodedError } from "../common/error-codes.js";
import { globMatch } from "../common/glob.js";
import type { RegistryConfig, TokenEntry } from "./config.js";

/**
 * Bearer tokens with scopes (docs/http-api.md "Auth"): `pull:<glob>`, `push:<glob>`, `delete:<glob>`,
 * `admin`. Tokens are high-entropy random strings, so a plain sha256 is a sound way to store
 * them; presented tokens are compared against every stored hash in constant time.
 */
export type Action = "pull" | "push" | "delete";

export type Principal = { kind: "anonymous" } | { kind: "token"; id: string; scopes: string[] };

export const ANONYMOUS: Principal = { kind: "anonymous" };

export function newToken(): { token: string; id: string; sha256: string } {
  const token = `tmpl_${randomBytes(32).toString("base64url")}`;
  return { token, id: randomBytes(4).toString("hex"), sha256: hashToken(token) };
}

export function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/** Finds the token entry for a presented token, looking at every entry (no early exit). */
export function findToken(tokens: TokenEntry[], presented: string): TokenEntry | null {
  const digest = Buffer.from(hashToken(presented), "hex");
  let found: TokenEntry | null = null;
  for (const entry of tokens) {
    const stored = Buffer.from(entry.sha256, "hex");
    if (stored.length === digest.length && timingSafeEqual(stored, digest) && !found) found = entry;
  }
  return found;
}

const unauthorized = (message: string) =>
  new CodedError("UNAUTHORIZED", message, { "WWW-Authenticate": 'Bearer realm="templar"' });

/** Who is calling: anonymous, or the token's entry. A bad or unknown token is a 401, never anonymous. */
export function authenticate(header: string | undefined, config: RegistryConfig): Principal {
  if (header === undefined || header === "") return ANONYMOUS;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!m) throw unauthorized("Authorization header must be 'Bearer <token>'");
  const entry = findToken(config.tokens, m[1]!);
  if (!entry) throw unauthorized("unknown or revoked token");
  return { kind: "token", id: entry.id, scopes: entry.scopes };
}

/** Whether `principal` may do `action` on template `name` (or on any template when name is "*any*"). */
export function allowed(
  principal: Principal,
  action: Action,
  name: string | null,
  config: RegistryConfig,
): boolean {
  if (principal.kind === "anonymous") return action === "pull" && config.anonymousPull;
  for (const scope of principal.scopes) {
    if (scope === "admin") return true;
    const [verb, glob] = scope.split(":", 2) as [string, string];
    // A push token may also read what it may push.
    const covers = verb === action || (action === "pull" && verb === "push");
    if (covers && (name === null || globMatch(glob, name))) return true;
  }
  return false;
}

/**
 * Whether `principal` may pull every name (admin, `pull:*`, `push:*`, or anonymous with
 * anonymous pull on): such callers read any blob without looking up which templates name it.
 */
export function pullsEverything(principal: Principal, config: RegistryConfig): boolean {
  if (principal.kind === "anonymous") return config.anonymousPull;
  return principal.scopes.some((scope) => {
    if (scope === "admin") return true;
    const [verb, glob] = scope.split(":", 2) as [string, string];
    return (verb === "pull" || verb === "push") && /^\*+$/.test(glob);
  });
}

/** Throws 401 unless the caller presented a valid token (any scope): `metrics: token`. */
export function requireToken(principal: Principal, what: string): void {
  if (principal.kind === "anonymous") throw unauthorized(`a token is needed to ${what}`);
}

/**
 * Who opened a resumable upload, as stored beside it: a hash of the token's public id, never
 * the token. Only equality matters, so the bucket need not carry ids that name config entries.
 * Anonymous callers never push, so they own nothing.
 */
export function uploadOwner(principal: Principal): string | null {
  if (principal.kind === "anonymous") return null;
  return createHash("sha256").update(`templar upload owner\0${principal.id}`, "utf8").digest("hex");
}

/** Throws 401 (no valid credentials) or 403 (valid token, wrong scope) unless allowed. */
export function authorize(
  principal: Principal,
  action: Action,
  name: string | null,
  config: RegistryConfig,
): void {
  if (allowed(principal, action, name, config)) return;
  const what = name === null ? `${action}` : `${action} ${name}`;
  if (principal.kind === "anonymous")
    throw unauthorized(`a token with scope ${action}:<glob> is needed to ${what}`);
  throw new CodedError("DENIED", `token ${principal.id} has no scope that allows ${what}`);
}
