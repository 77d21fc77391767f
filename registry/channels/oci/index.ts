import { Hono } from "hono";
import { allowed } from "../../auth.js";
import { type Ctx, deps, type RegistryEnv } from "../../http/context.js";
import type { HostChannel } from "../channel.js";
import { OciError, ociErrorResponse } from "./errors.js";
import { getBlob, getCatalog, getManifest, getReferrers, getTags } from "./handlers.js";
import { resolveRepo } from "./multiarch.js";
import { templateOfRepo } from "./repo.js";
import { type Challenge, issueToken, ociPrincipal, unauthorized } from "./token.js";

/**
 * OCI Distribution API v1.1, pull and content discovery (README "Proxmox VE 9 and other OCI
 * clients"), for Proxmox VE 9's "pull from OCI registry" (skopeo), podman, umoci and others:
 *
 *   GET /v2/                                  200, or 401 with the token challenge
 *   GET /v2/token                             HTTP Basic (a templar token) -> short-lived bearer token
 *   GET|HEAD /v2/<repo>/manifests/<tag|digest>   image index, or an image manifest by digest
 *   GET|HEAD /v2/<repo>/blobs/<digest>        layer (= the template's tar.gz / tar.zst) or config
 *   GET /v2/<repo>/tags/list?n=&last=         versions, templar tags, latest
 *   GET /v2/<repo>/referrers/<digest>         always empty
 *   GET /v2/_catalog?n=&last=                 repositories the caller may pull
 *
 * Push (POST/PUT/PATCH/DELETE) answers 405 UNSUPPORTED: templates are pushed with their signed
 * templar manifest over /v1, and the OCI documents are derived from it.
 *
 * The channel speaks OCI's own auth and error format, so it takes its routes as one sub-app with
 * its own pull check (the same scopes as every other channel) instead of the registry's 401 in
 * templar's format: paths is empty on purpose.
 */
const ROUTE = /^\/v2\/(.+)\/(manifests|blobs|referrers)\/([^/]+)$/;
const TAGS = /^\/v2\/(.+)\/tags\/list$/;

function challengeOf(c: Ctx, repo?: string): Challenge {
  const config = c.get("config");
  const base = (config.compat.publicUrl ?? new URL(c.req.url).origin).replace(/\/+$/, "");
  return { realm: `${base}/v2/token`, scope: repo ? `repository:${repo}:pull` : undefined };
}

/** The caller may pull `name` (or anything, for null): else 401 with the challenge, or 403. */
function needPull(c: Ctx, name: string | null, repo?: string): void {
  const principal = c.get("principal");
  if (allowed(principal, "pull", name, c.get("config"))) return;
  if (principal.kind === "anonymous")
    throw unauthorized("authentication required to pull", challengeOf(c, repo));
  throw new OciError(
    "DENIED",
    `token ${principal.id} has no scope that allows pull${name ? ` ${name}` : ""}`,
  );
}

export function ociApp(): Hono<RegistryEnv> {
  const app = new Hono<RegistryEnv>();
  app.onError((err, c) => ociErrorResponse(c, err));
  app.use("*", async (c, next) => {
    const config = await deps(c).config.get();
    c.set("config", config);
    c.header("Docker-Distribution-API-Version", "registry/2.0");
    if (c.req.path === "/v2/token") return next();
    c.set("principal", ociPrincipal(c.req.header("authorization"), config, challengeOf(c)));
    await next();
  });

  app.get("/token", (c) => {
    const { token, expiresIn } = issueToken(c.req.header("authorization"), c.get("config"));
    c.header("Cache-Control", "no-store");
    return c.json({ token, access_token: token, expires_in: expiresIn, issued_at: new Date().toISOString() });
  });
  app.get("/_catalog", async (c) => {
    needPull(c, null);
    return getCatalog(c);
  });
  app.on(["GET", "HEAD"], "/*", async (c) => {
    const url = c.req.path;
    if (url === "/v2/" || url === "/v2") {
      needPull(c, null);
      return c.json({});
    }
    const tags = TAGS.exec(url);
    const m = tags ? null : ROUTE.exec(url);
    if (!tags && !m) throw new OciError("NAME_UNKNOWN", `no route for ${c.req.method} ${url}`);
    const path = (tags?.[1] ?? m?.[1])!;
    needPull(c, null, path);
    const repo = await resolveRepo(c, path, templateOfRepo(c, path), (name) => needPull(c, name, path));
    if (tags) return getTags(c, repo);
    let ref: string;
    try {
      ref = decodeURIComponent(m![3]!);
    } catch {
      throw new OciError("MANIFEST_UNKNOWN", `${JSON.stringify(m![3])} is neither a tag nor a digest`);
    }
    if (m![2] === "manifests") return getManifest(c, repo, ref);
    if (m![2] === "blobs") return getBlob(c, repo, ref);
    return getReferrers(c, repo, ref);
  });
  app.all("/*", (c) => {
    throw new OciError(
      "UNSUPPORTED",
      `${c.req.method} ${c.req.path}: this registry is pull-only over /v2 (push with templar push)`,
    );
  });
  return app;
}

export const oci: HostChannel = {
  name: "OCI Distribution (Proxmox VE 9, skopeo, podman)",
  paths: [],
  routes(app) {
    app.route("/v2", ociApp());
  },
};
