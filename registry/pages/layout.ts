import { createHash } from "node:crypto";
import { html, raw } from "hono/html";

/**
 * The frame every page shares: one small inline stylesheet (no external assets, no scripts),
 * a header with the way home, and the small formatters the pages use.
 *
 * Everything interpolated into `html` is escaped by hono/html; `raw` is used only for the
 * constant stylesheet (inside <style> entities are not decoded), never on data: descriptions,
 * package names and source URIs come from whoever pushed the template.
 */
export type Html = ReturnType<typeof html>;

const STYLESHEET = `
:root{color-scheme:light dark;--fg:#1b1f24;--muted:#5c6570;--line:#d8dde3;--bg:#fff;--soft:#f3f5f7;--link:#0b5cad}
@media (prefers-color-scheme:dark){:root{--fg:#e6e9ed;--muted:#9aa4af;--line:#39414a;--bg:#14181c;--soft:#1e242a;--link:#7db4ff}}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{border-bottom:1px solid var(--line);padding:.6rem 1.5rem;display:flex;gap:1rem;align-items:baseline;flex-wrap:wrap}
header a.home{font-weight:700;color:var(--fg);text-decoration:none}
nav.crumbs{color:var(--muted)}
main{padding:1rem 1.5rem 3rem;max-width:80rem}
h1{font-size:1.5rem;margin:.5rem 0}h2{font-size:1.15rem;margin:1.6rem 0 .5rem}
a{color:var(--link)}
p.lead{color:var(--muted);margin-top:0}
table{border-collapse:collapse;width:100%;margin:.3rem 0 1rem}
th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid var(--line);vertical-align:top}
th{font-weight:600;color:var(--muted);font-size:.85rem}
table.catalog{table-layout:fixed}table.catalog th:nth-child(1){width:20%}table.catalog th:nth-child(2){width:24%}
table.catalog th:nth-child(7){width:15%}table.catalog th:nth-child(8){width:11%}
td.num,th.num{text-align:right;white-space:nowrap}
code,pre{font:13px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{background:var(--soft);padding:.6rem .8rem;border-radius:6px;overflow-x:auto;margin:.3rem 0 .8rem}
.digest{word-break:break-all}
.tag{display:inline-block;padding:0 .45rem;margin:0 .2rem .1rem 0;border:1px solid var(--line);border-radius:999px;font-size:.8rem}
.facets{margin:.3rem 0 1rem;color:var(--muted)}
.facets a,.facets strong{margin-right:.6rem}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:.3rem 0 1rem}
dl.kv dt{color:var(--muted)}dl.kv dd{margin:0}
form.filter{display:flex;gap:.5rem;margin:.3rem 0 .6rem}
form.filter input{font:inherit;padding:.25rem .5rem;min-width:16rem;border:1px solid var(--line);border-radius:4px;background:var(--bg);color:var(--fg)}
form.filter button{font:inherit;padding:.25rem .8rem}
.muted{color:var(--muted)}
footer{border-top:1px solid var(--line);padding:.6rem 1.5rem;color:var(--muted);font-size:.85rem}
`;

/** The stylesheet is allowed by its hash, so the policy can forbid every other style and all script. */
const STYLE_HASH = createHash("sha256").update(STYLESHEET, "utf8").digest("base64");

const STYLE_ELEMENT_TEXT = raw(STYLESHEET);

/** Response headers for every page: no script at all, nothing from elsewhere, no framing. */
export const PAGE_HEADERS: Record<string, string> = {
  "Content-Security-Policy": [
    "default-src 'none'",
    `style-src 'sha256-${STYLE_HASH}'`,
    "img-src 'self'",
    "form-action 'self'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
  ].join("; "),
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  "X-Frame-Options": "DENY",
};

export interface Crumb {
  label: string;
  href?: string;
}

export function layout(title: string, crumbs: Crumb[], body: Html): Html {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · templar</title>
<style>${STYLE_ELEMENT_TEXT}</style>
</head>
<body>
<header><a class="home" href="/">templar registry</a><nav class="crumbs">${crumbs.map((c, i) => html`${i > 0 ? " / " : ""}${c.href ? html`<a href="${c.href}">${c.label}</a>` : c.label}`)}</nav></header>
<main>
${body}
</main>
<footer>Pages for people; programs use the <a href="/v1/templates">HTTP API</a> (<code>/v1/…</code>).</footer>
</body>
</html>
`;
}

/** Path of a template's page; names and versions are already restricted, encoding is belt and braces. */
export function templateHref(name: string, version?: string): string {
  const base = `/templates/${encodeURIComponent(name)}`;
  return version === undefined ? base : `${base}/${encodeURIComponent(version)}`;
}

export function blobHref(digest: string): string {
  return `/v1/blobs/${encodeURIComponent(digest).replace("%3A", ":")}`;
}

/** Sizes in IEC units, as `ls -lh` and `du -h` print them. */
export function formatSize(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** `2026-11-25 13:49 UTC`: readable, unambiguous, the same for every reader. */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return "–";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

/** The artifact list as `tar.zst 12 MiB · tar.gz 15 MiB`, optionally with download links. */
export function sizesList(
  artifacts: { format: string; digest: string; size: number }[],
  download?: { name: string; version: string },
): Html {
  if (artifacts.length === 0) return html`<span class="muted">–</span>`;
  return html`${artifacts.map(
    (a, i) =>
      html`${i > 0 ? " · " : ""}${
        download
          ? html`<a href="${blobHref(a.digest)}" download="${download.name}-${download.version}.${a.format}">${a.format}</a>`
          : a.format
      } ${formatSize(a.size)}`,
  )}`;
}
