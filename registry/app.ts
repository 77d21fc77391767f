import { Hono } from "hono";
import { routePath } from "hono/route";
import { CodedError } from "../common/error-codes.js";
import { authenticate } from "./auth.js";
import { getListing, getPrecreatedFile } from "./compat/precreated.js";
import { getAplinfo, getAplinfoGz, getAplinfoSignature, getProxmoxFile } from "./compat/proxmox.js";
import { need, type RegistryDeps, type RegistryEnv } from "./context.js";
import { errorBody, toErrorResponse } from "./errors.js";
import { getBlob, putBlob } from "./handlers/blobs.js";
import { healthz, metrics, readyz } from "./handlers/health.js";
import { deleteVersion, getManifest, getSignature, putManifest, putSignature } from "./handlers/manifests.js";
import { getArtifactSignature, putArtifactSignature } from "./handlers/signatures.js";
import { deleteTag, putTag } from "./handlers/tags.js";
import { getCatalog, getTemplate } from "./handlers/templates.js";
import { abortUpload, completeUpload, createUpload, patchUpload, uploadStatus } from "./handlers/uploads.js";
import { pageContext, pages } from "./pages/index.js";

/**
 * The registry's HTTP API, v1 (DESIGN.md "Registry HTTP API"). This table is the whole API;
 * handlers live in handlers/*, one file per resource. GET routes answer HEAD as well.
 */
export function createApp(deps: RegistryDeps): Hono<RegistryEnv> {
  const app = new Hono<RegistryEnv>();
  app.use("*", requestLog(deps));
  const principal = async (c: import("hono").Context<RegistryEnv>, next: () => Promise<void>) => {
    const config = await deps.config.get();
    c.set("config", config);
    c.set("principal", authenticate(c.req.header("authorization"), config));
    await next();
  };
  for (const path of ["/v1/*", "/precreated/*", "/aplinfo.dat*", "/proxmox/*"]) app.use(path, principal);
  // Everything the host tools fetch is a pull: the same 401 as /v1 without a token when anonymous
  // pull is off (the listing and aplinfo.dat would otherwise answer an empty 200), before any
  // file name is looked at. Each file's own name is checked again by its handler.
  const compatPull = async (c: import("hono").Context<RegistryEnv>, next: () => Promise<void>) => {
    need(c, "pull", null);
    await next();
  };
  for (const path of ["/precreated/*", "/aplinfo.dat*", "/proxmox/*"]) app.use(path, compatPull);

  app.get("/v1/templates", getCatalog);
  app.get("/v1/templates/:name", getTemplate);
  app.put("/v1/templates/:name/tags/:tag", putTag);
  app.delete("/v1/templates/:name/tags/:tag", deleteTag);
  app.get("/v1/templates/:name/:version/signature", getSignature);
  app.get("/v1/templates/:name/:version/signature/:format", getArtifactSignature);
  app.put("/v1/templates/:name/:version/signature/:format", putArtifactSignature);
  app.put("/v1/templates/:name/:version/signature", putSignature);
  app.get("/v1/templates/:name/:ref", getManifest);
  app.put("/v1/templates/:name/:version", putManifest);
  app.delete("/v1/templates/:name/:version", deleteVersion);

  app.get("/v1/blobs/:digest", getBlob);
  app.put("/v1/blobs/:digest", putBlob);

  app.post("/v1/uploads", createUpload);
  app.patch("/v1/uploads/:id", patchUpload);
  app.get("/v1/uploads/:id", uploadStatus);
  app.put("/v1/uploads/:id", completeUpload);
  app.delete("/v1/uploads/:id", abortUpload);

  // Host compatibility (registry/compat/): OpenVZ's vztmpl-dl and Proxmox's pveam, unchanged.
  app.get("/precreated/.listing", getListing);
  app.get("/precreated/:channel/.listing", getListing);
  app.get("/precreated/:file", getPrecreatedFile);
  app.get("/precreated/:channel/:file", getPrecreatedFile);
  app.get("/aplinfo.dat", getAplinfo);
  app.get("/aplinfo.dat.gz", getAplinfoGz);
  app.get("/aplinfo.dat.asc", getAplinfoSignature);
  app.get("/proxmox/:file", getProxmoxFile);

  app.get("/healthz", healthz);
  app.get("/readyz", readyz);
  app.get("/metrics", metrics);

  // pages for people (registry/pages): HTML over the same handlers, resolution and auth as /v1
  app.use("/", pageContext);
  app.use("/templates/*", pageContext);
  app.get("/", pages.catalog);
  app.get("/templates/:name", pages.template);
  app.get("/templates/:name/:version", pages.version);
  app.get("/templates/*", pages.notFound);

  app.notFound((c) => c.json(errorBody("NOT_FOUND", `no route for ${c.req.method} ${c.req.path}`), 404));
  app.onError((err, c) => {
    const aborted = clientAbort(c, err);
    if (aborted) {
      // Nobody is left to answer: log it as the client's doing, not as a server error.
      c.set("aborted" as never, aborted as never);
      return new Response(null, { status: CLIENT_CLOSED });
    }
    return toErrorResponse(c, err);
  });
  return app;
}

/** One JSON line per request, and the per-route counters. Never logs the Authorization header. */
function requestLog(deps: RegistryDeps) {
  return async (c: import("hono").Context<RegistryEnv>, next: () => Promise<void>) => {
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
const CLIENT_CLOSED = 499;

/**
 * Why the request failed because its client went away (the connection closed before the body
 * ended: a cut network, a killed client), or null for any other failure. A CodedError is the
 * handler's own answer (a 413 that stopped reading a huge body closes the connection too).
 */
function clientAbort(c: import("hono").Context<RegistryEnv>, err: unknown): string | null {
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
