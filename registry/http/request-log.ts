import { routePath } from "hono/route";
import { CodedError } from "../../common/error-codes.js";
import type { Ctx, RegistryDeps } from "./context.js";

/** One JSON line per request, and the per-route counters. Never logs the Authorization header. */
export function requestLog(deps: RegistryDeps) {
  return async (c: Ctx, next: () => Promise<void>) => {
    const started = performance.now();
    c.set("deps", deps);
    await next();
    let route = routePath(c, -1);
    if (route === "*" || route === "/v1/*") route = "unmatched";
    // A streamed body (sendStream) went straight to the socket: its status and length are there.
    const outgoing = c.env?.outgoing;
    const sent = outgoing?.headersSent === true;
    const status = sent ? outgoing.statusCode : c.res.status;
    const method = c.req.method === "HEAD" ? "HEAD" : c.req.method;
    deps.metrics.request(method, route, status);
    const principal = c.get("principal");
    const entry: Record<string, unknown> = {
      time: new Date().toISOString(),
      method,
      path: loggedPath(c.req.path),
      route,
      status,
      ms: Math.round((performance.now() - started) * 10) / 10,
      bytes: Number((sent ? outgoing.getHeader("content-length") : c.res.headers.get("content-length")) ?? 0),
      client: principal?.kind === "token" ? `token:${principal.id}` : "anonymous",
      remote: c.env?.incoming?.socket?.remoteAddress,
    };
    const aborted = c.get("aborted" as never) as string | undefined;
    if (aborted) entry.aborted = aborted;
    const detail = c.get("errorDetail" as never) as string | undefined;
    if (detail) entry.error = detail.split("\n").slice(0, 3).join(" | ");
    deps.log(entry);
  };
}

/** nginx's status for "client closed the request": logged and counted, never sent. */
export const CLIENT_CLOSED = 499;

/**
 * Why the request failed because its client went away (the connection closed before the body
 * ended: a cut network, a killed client), or null for any other failure. A CodedError is the
 * handler's own answer (a 413 that stopped reading a huge body closes the connection too).
 */
export function clientAbort(c: Ctx, err: unknown): string | null {
  if (err instanceof CodedError) return null;
  const incoming = c.env?.incoming;
  if (!incoming || incoming.complete || !(incoming.destroyed || incoming.socket?.destroyed)) return null;
  const declared = incoming.headers["content-length"];
  return `client closed the connection before the request body ended${declared ? ` (${declared} bytes announced)` : ""}`;
}

/**
 * The path as logged. Upload ids show only their first characters: with its owner's token an
 * id is all it takes to write to that upload, and logs travel further than the registry.
 */
export function loggedPath(path: string): string {
  const m = /^\/v1\/uploads\/([^/]{7,})(.*)$/.exec(path);
  return m ? `/v1/uploads/${m[1]!.slice(0, 6)}...${m[2]}` : path;
}
