import { Hono } from "hono";
import { getPath } from "hono/utils/url";
import { authenticate } from "./auth.js";
import { hostChannels } from "./channels/index.js";
import { getBlob, putBlob } from "./handlers/blobs.js";
import { getDeltas } from "./handlers/deltas.js";
import { healthz, metrics, readyz } from "./handlers/health.js";
import { deleteVersion, getManifest, getSignature, putManifest, putSignature } from "./handlers/manifests.js";
import { getSbom } from "./handlers/sbom.js";
import { getArtifactSignature, putArtifactSignature } from "./handlers/signatures.js";
import { deleteTag, putTag } from "./handlers/tags.js";
import { getCatalog, getTemplate } from "./handlers/templates.js";
import { abortUpload, completeUpload, createUpload, patchUpload, uploadStatus } from "./handlers/uploads.js";
import { type Ctx, need, type RegistryDeps, type RegistryEnv } from "./http/context.js";
import { errorBody, toErrorResponse } from "./http/errors.js";
import { CLIENT_CLOSED, clientAbort, requestLog } from "./http/request-log.js";
import { pageContext, pages } from "./pages/index.js";
import { getPublicKey } from "./signers.js";

/**
 * The registry's routes (docs/http-api.md): this table is the whole HTTP surface. The API's
 * handlers live in handlers/*, one file per resource; host channels in channels/*, one per kind
 * of host; pages in pages/*. All of them call the store (store/). GET routes answer HEAD too.
 */
export function createApp(deps: RegistryDeps): Hono<RegistryEnv> {
  // Repeated slashes count as one: lxc-download asks for `//meta/1.0/index-system` and
  // `/images/...//rootfs.tar.xz`, and no route has an empty path segment.
  const app = new Hono<RegistryEnv>({
    getPath: (request) => {
      const path = getPath(request);
      return path.includes("//") ? path.replace(/\/{2,}/g, "/") : path;
    },
  });
  app.use("*", requestLog(deps));
  const principal = async (c: Ctx, next: () => Promise<void>) => {
    const config = await deps.config.get();
    c.set("config", config);
    c.set("principal", authenticate(c.req.header("authorization"), config));
    await next();
  };
  app.use("/v1/*", principal);

  app.get("/v1/templates", getCatalog);
  app.get("/v1/templates/:name", getTemplate);
  app.put("/v1/templates/:name/tags/:tag", putTag);
  app.delete("/v1/templates/:name/tags/:tag", deleteTag);
  app.get("/v1/templates/:name/:version/signature", getSignature);
  app.get("/v1/templates/:name/:version/deltas", getDeltas);
  app.get("/v1/templates/:name/:version/sbom", getSbom);
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

  // Host channels: everything a host tool fetches is a pull, so the same 401 as /v1 without a
  // token when anonymous pull is off, before any file name is looked at (each handler checks
  // the template's own name again).
  const pull = async (c: Ctx, next: () => Promise<void>) => {
    need(c, "pull", null);
    await next();
  };
  for (const channel of hostChannels) {
    for (const path of channel.paths) app.use(path, principal, pull);
    channel.routes(app);
  }

  // Maintainers' public keys from the push policy, for the keyring step of the pull commands.
  app.use("/keys/*", principal, pull);
  app.get("/keys/:file", getPublicKey);

  app.get("/healthz", healthz);
  app.get("/readyz", readyz);
  app.get("/metrics", metrics);

  // Pages for people: HTML over the same store, resolution and auth as /v1.
  app.use("/", pageContext);
  app.use("/templates/*", pageContext);
  app.get("/", pages.catalog);
  app.get("/templates/:name", pages.template);
  app.get("/templates/:name/:version", pages.version);
  app.get("/templates/*", pages.notFound);

  app.notFound((c) => c.json(errorBody("NOT_FOUND", `no route for ${c.req.method} ${c.req.path}`), 404));
  app.onError((err, c) => {
    const aborted = clientAbort(c as Ctx, err);
    if (aborted) {
      // Nobody is left to answer: log it as the client's doing, not as a server error.
      c.set("aborted" as never, aborted as never);
      return new Response(null, { status: CLIENT_CLOSED });
    }
    return toErrorResponse(c, err);
  });
  return app;
}
