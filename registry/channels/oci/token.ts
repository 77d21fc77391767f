import { createHmac, timingSafeEqual } from "node:crypto";
import { ANONYMOUS, authenticate, findToken, type Principal } from "../../auth.js";
import type { RegistryConfig, TokenEntry } from "../../config.js";
import { parseDuration } from "../../config.js";
import { OciError } from "./errors.js";

/**
 * Token auth as OCI clients do it (the Docker registry token flow; README "Proxmox VE 9 and
 * other OCI clients"):
 *
 *   GET /v2/  ->  401, WWW-Authenticate: Bearer realm="<base>/v2/token",service="templar"
 *   GET /v2/token?service=templar&scope=...  with HTTP Basic (any user, a templar token as
 *       the password)  ->  { token, access_token, expires_in, issued_at }
 *   then every request carries Authorization: Bearer <that token>
 *
 * The bearer token is `oci1.<token id>.<expiry, unix seconds>.<MAC>`: it names the templar token
 * it was exchanged for and carries that token's scopes as they are in the config when it is
 * used (a revoked token's bearer tokens stop working at once). The MAC is HMAC-SHA256 over
 * `<id>.<expiry>` with a key derived from the token's stored sha256, so any replica reading the
 * same config verifies it with no shared secret of its own and no state. The trade-off: whoever
 * reads the config file can mint bearer tokens for its entries (but still not learn the tokens),
 * so the config file stays as private as a key file.
 */
const PREFIX = "oci1.";
const ANONYMOUS_TOKEN = "anonymous";

function keyOf(entry: TokenEntry): Buffer {
  return createHmac("sha256", Buffer.from(entry.sha256, "hex")).update("templar oci bearer v1").digest();
}

function macOf(entry: TokenEntry, payload: string): Buffer {
  return createHmac("sha256", keyOf(entry)).update(payload).digest();
}

export function mintBearer(entry: TokenEntry, expires: number): string {
  const payload = `${entry.id}.${expires}`;
  return `${PREFIX}${payload}.${macOf(entry, payload).toString("base64url")}`;
}

/** The config entry a bearer token stands for, or null (bad MAC, expired, or the entry is gone). */
export function verifyBearer(tokens: TokenEntry[], token: string, now = Date.now()): TokenEntry | null {
  if (!token.startsWith(PREFIX)) return null;
  const [id = "", exp = "", mac = ""] = token.slice(PREFIX.length).split(".");
  if (!/^[0-9a-f]{8,32}$/.test(id) || !/^\d{1,12}$/.test(exp) || Number(exp) * 1000 <= now) return null;
  const presented = Buffer.from(mac, "base64url");
  let found: TokenEntry | null = null;
  for (const entry of tokens) {
    if (entry.id !== id) continue;
    const expected = macOf(entry, `${id}.${exp}`);
    if (presented.length === expected.length && timingSafeEqual(presented, expected) && !found) found = entry;
  }
  return found;
}

export interface Challenge {
  realm: string;
  scope?: string | undefined;
}

export function challengeHeader(ch: Challenge): string {
  const scope = ch.scope ? `,scope="${ch.scope}"` : "";
  return `Bearer realm="${ch.realm}",service="templar"${scope}`;
}

export function unauthorized(message: string, ch: Challenge): OciError {
  return new OciError("UNAUTHORIZED", message, { "WWW-Authenticate": challengeHeader(ch) });
}

/**
 * Who calls /v2: anonymous, a bearer token from /v2/token, a templar token given as a bearer
 * token directly, or HTTP Basic with a templar token as the password. Bad credentials are a 401
 * with the challenge, never anonymous.
 */
export function ociPrincipal(header: string | undefined, config: RegistryConfig, ch: Challenge): Principal {
  if (header === undefined || header === "") return ANONYMOUS;
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (bearer?.[1] === ANONYMOUS_TOKEN) return ANONYMOUS;
  if (bearer?.[1]?.startsWith(PREFIX)) {
    const entry = verifyBearer(config.tokens, bearer[1]);
    if (!entry) throw unauthorized("bearer token unknown, expired or revoked: get a new one", ch);
    return { kind: "token", id: entry.id, scopes: entry.scopes };
  }
  const basic = basicPassword(header);
  if (basic !== undefined) {
    const entry = basic === null ? null : findToken(config.tokens, basic);
    if (!entry) throw unauthorized("unknown or revoked token", ch);
    return { kind: "token", id: entry.id, scopes: entry.scopes };
  }
  try {
    return authenticate(header, config);
  } catch {
    throw unauthorized("unknown or revoked token", ch);
  }
}

/** The password of a Basic header; undefined when the header is not Basic, null when it is malformed. */
function basicPassword(header: string): string | null | undefined {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m) return /^Basic\b/i.test(header) ? null : undefined;
  const text = Buffer.from(m[1]!, "base64").toString("utf8");
  const colon = text.indexOf(":");
  return colon < 0 ? null : text.slice(colon + 1);
}

/**
 * GET /v2/token: Basic credentials (a templar token as the password) for a bearer token that
 * lives `oci.tokenTtl`. Without credentials, with anonymous pull on, an anonymous token (clients
 * ask for one when a challenge comes their way); with it off, 401.
 */
export function issueToken(
  header: string | undefined,
  config: RegistryConfig,
  now = Date.now(),
): { token: string; expiresIn: number } {
  const ttl = Math.max(1, Math.floor(parseDuration(config.oci.tokenTtl) / 1000));
  const password = header ? basicPassword(header) : undefined;
  if (password === undefined && !header) {
    if (config.anonymousPull) return { token: ANONYMOUS_TOKEN, expiresIn: ttl };
    throw new OciError("UNAUTHORIZED", "credentials needed: a templar token as the password (HTTP Basic)", {
      "WWW-Authenticate": 'Basic realm="templar"',
    });
  }
  const entry = typeof password === "string" ? findToken(config.tokens, password) : null;
  if (!entry) {
    throw new OciError("UNAUTHORIZED", "unknown or revoked token (give it as the Basic password)", {
      "WWW-Authenticate": 'Basic realm="templar"',
    });
  }
  const expires = Math.floor(now / 1000) + ttl;
  return { token: mintBearer(entry, expires), expiresIn: ttl };
}
