import { authenticate, requireToken } from "../auth.js";
import { type Ctx, deps } from "../http/context.js";
import { errorBody } from "../http/errors.js";

export function healthz(c: Ctx): Response {
  return c.json({ status: "ok" });
}

/** Ready when storage answers (a write probe on disk, a bucket check on S3). */
export async function readyz(c: Ctx): Promise<Response> {
  try {
    await deps(c).store.check();
    return c.json({ status: "ready", storage: deps(c).store.kind });
  } catch (err) {
    return c.json(errorBody("STORAGE_UNAVAILABLE", (err as Error).message), 503);
  }
}

/**
 * Prometheus scrapes. With `metrics: token` in the config any valid token may read them (its
 * scope does not matter: the counters name routes, not templates); else anyone may.
 */
export async function metrics(c: Ctx): Promise<Response> {
  const config = await deps(c).config.get();
  if (config.metrics === "token") {
    const principal = authenticate(c.req.header("authorization"), config);
    c.set("principal", principal); // so the request log names the token
    requireToken(principal, "read metrics");
  }
  c.header("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
  return c.body(await deps(c).metrics.render());
}
