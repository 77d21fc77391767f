import { html } from "hono/html";
import type { Manifest } from "../../common/manifest.js";
import { diffPackages } from "../../common/package-diff.js";
import { type Ctx, deps } from "../http/context.js";
import { formatSize, type Html, templateHref } from "./layout.js";

/** Older versions offered as bases for a comparison on the version page. */
const MAX_BASES = 20;

/**
 * The version page's "Changes" section: the package changes since the previous version (or
 * since the version `?since=` names), the tar size change and the delta patch when the registry
 * has one, and links to compare with any other older version.
 */
export async function changesSection(c: Ctx, name: string, version: string, m: Manifest): Promise<Html> {
  const { store } = deps(c);
  const entries = (await store.versions.list(name)).entries;
  const at = entries.findIndex((e) => e.version.version === version);
  const older = at < 0 ? [] : entries.slice(at + 1).map((e) => e.version.version);
  if (older.length === 0)
    return html`<h2 id="changes">Changes</h2><p class="muted">The first version of ${name}.</p>`;
  const asked = c.req.query("since");
  const since = asked && older.includes(asked) ? asked : older[0]!;
  const base = await store.manifests.manifest(name, since);
  if (!base) return html``;
  const d = diffPackages(base, m);
  const delta = (await store.deltas.get(name, version))?.deltas.find(
    (x) => x.fromTarSha256 === base.rootfs.tarSha256,
  );
  const path = templateHref(name, version);
  const rows = [
    ...d.changed.map(
      (p) =>
        html`<tr><td>${p.kind}</td><td>${p.name}</td><td>${p.arch}</td><td>${p.from}</td><td>${p.to}</td></tr>`,
    ),
    ...d.added.map(
      (p) => html`<tr><td>added</td><td>${p.name}</td><td>${p.arch}</td><td></td><td>${p.version}</td></tr>`,
    ),
    ...d.removed.map(
      (p) =>
        html`<tr><td>removed</td><td>${p.name}</td><td>${p.arch}</td><td>${p.version}</td><td></td></tr>`,
    ),
  ];
  return html`<h2 id="changes">Changes since ${since}</h2>
<p>${d.changed.length} changed, ${d.added.length} added, ${d.removed.length} removed, ${d.unchanged} unchanged packages;
tar ${formatSize(base.rootfs.tarSize)} → ${formatSize(m.rootfs.tarSize)}${
    delta ? html`; delta patch from ${since}: ${formatSize(delta.size)}` : ""
  }.</p>
${
  rows.length
    ? html`<table class="changes">
<thead><tr><th>change</th><th>package</th><th>arch</th><th>${since}</th><th>${version}</th></tr></thead>
<tbody>${rows}</tbody>
</table>`
    : ""
}
<p class="muted">Compare with: ${older
    .slice(0, MAX_BASES)
    .map(
      (v, i) => html`${i ? ", " : ""}<a href="${path}?since=${encodeURIComponent(v)}#changes">${v}</a>`,
    )}</p>
<p class="muted">On a host: <code>templar diff ${name}@${since} ${name}@${version}</code></p>`;
}
