import { html } from "hono/html";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { CodedError } from "../../common/error-codes.js";
import { authenticate } from "../auth.js";
import { type Ctx, deps } from "../http/context.js";
import { toErrorResponse } from "../http/errors.js";
import { catalogPage } from "./catalog.js";
import { layout, PAGE_HEADERS } from "./layout.js";
import { templatePage } from "./template.js";
import { versionPage } from "./version.js";

/**
 * The registry's pages for people (docs/http-api.md: `GET /` and pages below it), server-rendered HTML
 * with no script. Auth is the API's: the same Bearer tokens and scopes, checked by the same
 * code, and no cookies (so no CSRF surface and nothing to log in to). A browser sends no
 * Authorization header on its own, so with anonymous pull switched off the pages answer 401;
 * they are meant for registries with anonymous pull, or behind a proxy that adds the header.
 */
type Handler = (c: Ctx) => Promise<Response>;

/** Middleware for every page: who is asking (as the /v1 middleware does), and the page headers. */
export async function pageContext(c: Ctx, next: () => Promise<void>): Promise<Response | undefined> {
  const config = await deps(c).config.get();
  c.set("config", config);
  try {
    c.set("principal", authenticate(c.req.header("authorization"), config));
  } catch (err) {
    c.res = await errorPage(c, err);
    setPageHeaders(c.res);
    return c.res;
  }
  await next();
  setPageHeaders(c.res);
  return undefined;
}

function setPageHeaders(res: Response): void {
  for (const [k, v] of Object.entries(PAGE_HEADERS)) res.headers.set(k, v);
}

/** A page handler whose errors become an HTML page with the API's status, headers and message. */
function page(handler: Handler): Handler {
  return async (c) => {
    try {
      return await handler(c);
    } catch (err) {
      return errorPage(c, err);
    }
  };
}

const TITLES: Record<number, string> = {
  400: "Bad request",
  401: "Token needed",
  403: "Not allowed",
  404: "Not found",
};

/** Maps the error exactly as the API does (toErrorResponse), then shows it as HTML. */
async function errorPage(c: Ctx, err: unknown): Promise<Response> {
  const api = toErrorResponse(c, err);
  const { error } = (await api.json()) as { error: { code: string; message: string } };
  const status = api.status as ContentfulStatusCode;
  const title = TITLES[status] ?? (status >= 500 ? "Registry error" : "Error");
  const hint =
    status === 401
      ? html`<p>This registry does not allow anonymous pull, and browsers send no token by themselves.
The pages are meant for registries with anonymous pull, or behind a proxy that adds
<code>Authorization: Bearer &lt;token&gt;</code> for its users. The command line works with a pull token:
<code>templar pull NAME --token …</code>.</p>`
      : status === 404
        ? html`<p>See <a href="/">all templates</a>.</p>`
        : "";
  const body = html`<h1>${title}</h1>
<p class="lead">${error.message} <span class="muted">(${error.code})</span></p>
${hint}`;
  return c.html(layout(title, [{ label: "templates", href: "/" }, { label: title }], body), status);
}

export const pages = {
  catalog: page(catalogPage),
  template: page(templatePage),
  version: page(versionPage),
  /** Anything else under /templates/: the same HTML 404 as an unknown name. */
  notFound: page(async (c) => {
    throw new CodedError("NOT_FOUND", `there is no page at ${c.req.path}`);
  }),
};
