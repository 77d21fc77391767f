import { html } from "hono/html";
import type { Ctx } from "../http/context.js";
import type { CatalogEntry } from "../store/catalog.js";
import { catalog, publicOrigin, versionSummary } from "./data.js";
import { formatTime, type Html, layout, sizesList, templateHref } from "./layout.js";
import { shellWord } from "./shell.js";

const SUMMARY_BATCH = 16;

/**
 * `GET /?distro=&arch=`: every template the caller may pull, grouped by distro, narrowed by plain
 * query links (the same filters as `GET /v1/templates`, which produces the list).
 */
export async function catalogPage(c: Ctx): Promise<Response> {
  const distro = c.req.query("distro") || null;
  const arch = c.req.query("arch") || null;
  const templates = await catalog(c);
  const rows: { t: CatalogEntry; artifacts: VersionArtifacts }[] = [];
  // Sizes come from each latest manifest; a few at a time, so a big catalog is not a burst of
  // storage listings (the VersionIndex and SummaryCache keep them for the next request).
  for (let i = 0; i < templates.length; i += SUMMARY_BATCH) {
    const batch = templates.slice(i, i + SUMMARY_BATCH);
    const got = await Promise.all(batch.map((t) => (t.latest ? versionSummary(c, t.name, t.latest) : null)));
    rows.push(...batch.map((t, j) => ({ t, artifacts: got[j]?.artifacts ?? [] })));
  }

  const groups = new Map<string, typeof rows>();
  for (const row of rows) {
    const key = row.t.distro ?? "other";
    groups.set(key, [...(groups.get(key) ?? []), row]);
  }
  const origin = publicOrigin(c);
  const filtered = distro !== null || arch !== null;

  const body = html`<h1>Templates</h1>
<p class="lead">${templates.length} template${templates.length === 1 ? "" : "s"}${filtered ? " matching the filter" : ""}. Pull one with <code>templar pull &lt;name&gt;[@version|@tag|@range] --registry ${shellWord(origin)}</code>.</p>
${facets("distro", distro, arch, templates)}
${facets("arch", distro, arch, templates)}
${
  templates.length === 0
    ? html`<p>${filtered ? "No template matches this filter." : "No templates yet."} Push one with <code>templar push out/ --registry ${shellWord(origin)} --token …</code>.</p>`
    : [...groups.entries()]
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([group, list]) => catalogTable(group, list))
}`;
  return c.html(layout("Templates", [{ label: "templates" }], body));
}

function catalogTable(group: string, rows: { t: CatalogEntry; artifacts: VersionArtifacts }[]): Html {
  return html`<h2 id="distro-${group}">${group}</h2>
<table class="catalog">
<thead><tr><th>name</th><th>description</th><th>release</th><th>arch</th><th>latest</th><th class="num">versions</th><th>sizes (latest)</th><th>updated</th></tr></thead>
<tbody>
${rows.map(
  ({ t, artifacts }) => html`<tr>
<td><a href="${templateHref(t.name)}">${t.name}</a></td>
<td>${t.description ?? ""}</td>
<td>${t.release ?? "–"}</td>
<td>${t.arch ?? "–"}</td>
<td>${t.latest ? html`<a href="${templateHref(t.name, t.latest)}">${t.latest}</a>` : "–"}</td>
<td class="num">${t.versions}</td>
<td>${sizesList(artifacts)}</td>
<td>${formatTime(t.updated)}</td>
</tr>`,
)}
</tbody>
</table>`;
}

type VersionArtifacts = { format: string; digest: string; size: number }[];

/** Links that set or clear one filter and keep the other. */
function facets(
  field: "distro" | "arch",
  distro: string | null,
  arch: string | null,
  templates: CatalogEntry[],
): Html {
  const current = field === "distro" ? distro : arch;
  const present = templates.map((t) => t[field]);
  const values = [...new Set([...present, current].filter((v): v is string => v !== null))].sort();
  const href = (value: string | null) => {
    const query = new URLSearchParams();
    const d = field === "distro" ? value : distro;
    const a = field === "arch" ? value : arch;
    if (d) query.set("distro", d);
    if (a) query.set("arch", a);
    const text = query.toString();
    return text ? `/?${text}` : "/";
  };
  const link = (label: string, value: string | null) =>
    value === current ? html`<strong>${label}</strong>` : html`<a href="${href(value)}">${label}</a>`;
  return html`<div class="facets" id="facet-${field}">${field}: ${link("all", null)}${values.map((v) => link(v, v))}</div>`;
}
