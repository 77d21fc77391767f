import { html } from "hono/html";
import { parseDigest } from "../../common/digest.js";
import { proxmoxFileName } from "../../common/manifest-files.js";
import { type Ctx, deps } from "../http/context.js";
import { type SignerInfo, signerOf } from "../signers.js";
import { changesSection } from "./changes.js";
import { publicOrigin, type VersionDetail, versionDetail } from "./data.js";
import { blobHref, formatSize, formatTime, type Html, layout, templateHref } from "./layout.js";
import { shellWord } from "./shell.js";
import { keyringStep, signerHtml } from "./trust.js";

/** Longest package filter we take from `?q=`; longer input is cut, not refused. */
const MAX_QUERY = 100;

/**
 * `GET /templates/{name}/{ref}`: one version's manifest for people: where it came from and what
 * was verified, the root filesystem, the artifacts with digests, and the package list, filtered
 * by a plain GET form (`?q=`), so it works without JavaScript. A tag or range redirects to the
 * version it resolves to, so the address of a page always names one immutable version.
 */
export async function versionPage(c: Ctx): Promise<Response> {
  const detail = await versionDetail(c);
  const { name, version, manifest: m } = detail;
  if (detail.kind !== "version") {
    return c.redirect(`${templateHref(name, version)}${new URL(c.req.url).search}`, 302);
  }
  const origin = publicOrigin(c);
  const signer = detail.signed ? await signerOf(c, name, version) : null;
  const { store } = deps(c);
  const artifactSigned = await Promise.all(
    m.artifacts.map(async (a) => (await store.manifests.artifactSignature(name, version, a.format)) !== null),
  );
  const pushed = (await store.versions.list(name)).entries.find((e) => e.version.version === version)?.object
    .modified;
  const q = (c.req.query("q") ?? "").trim().slice(0, MAX_QUERY);
  const all = m.packages ?? [];
  const needle = q.toLowerCase();
  const packages = needle ? all.filter((p) => p.name.toLowerCase().includes(needle)) : all;
  const facts = [m.distro, m.release, m.arch, m.flavour].filter(Boolean).join(" · ");

  const body = html`<h1>${name} <span class="muted">${version}</span></h1>
<p class="lead">${m.description ?? ""}${facts ? html` <span class="muted">(${facts})</span>` : ""}</p>
<h2>How to pull</h2>
${howToPull(origin, detail, signer)}
<h2>Manifest</h2>
<dl class="kv">
<dt>created</dt><dd>${formatTime(m.created)} <span class="muted">(build time, SOURCE_DATE_EPOCH)</span></dd>
${m.distroRelease ? html`<dt>distro release</dt><dd>${m.distroRelease} <span class="muted">(read from the template's root at build time)</span></dd>` : ""}
<dt>pushed</dt><dd>${pushed ? formatTime(pushed.toISOString()) : ""} <span class="muted">(when this registry received it)</span></dd>
<dt>signed by</dt><dd>${signerHtml(signer)}</dd>
<dt>digest</dt><dd><code class="digest">${detail.digest}</code> · <a href="/v1/templates/${name}/${version}">manifest JSON</a></dd>
<dt>signature</dt><dd>${
    detail.signed
      ? html`OpenPGP, detached: <a href="/v1/templates/${name}/${version}/signature">manifest.asc</a> (check with <code>gpg --verify</code> or <code>sqv</code>)`
      : html`<span class="muted">unsigned</span>`
  }</dd>
${m.recipe ? html`<dt>recipe</dt><dd><code>${m.recipe.path}</code> <span class="muted">sha256</span> <code class="digest">${m.recipe.sha256}</code></dd>` : ""}
</dl>
${sourceSection(m.source)}
<h2>Root filesystem</h2>
<dl class="kv">
<dt>tar size</dt><dd>${formatSize(m.rootfs.tarSize)} <span class="muted">(${m.rootfs.tarSize} bytes)</span></dd>
<dt>entries</dt><dd>${m.rootfs.entries}</dd>
<dt>tar sha256</dt><dd><code class="digest">${m.rootfs.tarSha256}</code> <span class="muted">(content identity, before compression)</span></dd>
</dl>
<h2>Artifacts</h2>
<table class="artifacts">
<thead><tr><th>format</th><th class="num">size</th><th>digest</th><th></th></tr></thead>
<tbody>
${m.artifacts.map(
  (a) => html`<tr>
<td>${a.format}</td>
<td class="num">${formatSize(a.size)}</td>
<td><code class="digest">${a.digest}</code></td>
<td><a href="${blobHref(a.digest)}" download="${name}-${version}.${a.format}">download</a>${
    artifactSigned[m.artifacts.indexOf(a)]
      ? html` · <a href="/v1/templates/${name}/${version}/signature/${a.format}">.asc</a>`
      : ""
  }</td>
</tr>`,
)}
</tbody>
</table>
${await changesSection(c, name, version, m)}
<h2 id="packages">Packages</h2>
${packagesSection(c, all.length, packages, q)}`;
  return c.html(
    layout(
      `${name} ${version}`,
      [{ label: "templates", href: "/" }, { label: name, href: templateHref(name) }, { label: version }],
      body,
    ),
  );
}

function sourceSection(source: VersionDetail["manifest"]["source"]): Html {
  if (!source) return html``;
  // Scalar fields (method, suite, variant, url...) as they are; inputs get their own table.
  const fields = Object.entries(source).filter(
    ([k, v]) => k !== "inputs" && (typeof v === "string" || typeof v === "number" || typeof v === "boolean"),
  );
  const inputs = source.inputs ?? [];
  return html`<h2>Source</h2>
<dl class="kv">${fields.map(([k, v]) => html`<dt>${k}</dt><dd>${String(v)}</dd>`)}</dl>
${
  inputs.length
    ? html`<table class="inputs">
<thead><tr><th>input</th><th>sha256</th><th>verified</th></tr></thead>
<tbody>${inputs.map(
        (i) =>
          html`<tr><td class="digest">${i.uri}</td><td><code class="digest">${i.sha256 ?? "–"}</code></td><td>${i.verified ?? html`<span class="muted">not recorded</span>`}</td></tr>`,
      )}</tbody>
</table>`
    : ""
}`;
}

function packagesSection(
  c: Ctx,
  total: number,
  shown: { name: string; version: string; arch: string }[],
  q: string,
): Html {
  if (total === 0) return html`<p class="muted">The manifest lists no packages.</p>`;
  const path = new URL(c.req.url).pathname;
  return html`<form class="filter" method="get" action="${path}#packages">
<input type="search" name="q" value="${q}" placeholder="filter by package name" aria-label="filter packages by name">
<button type="submit">Filter</button>${q ? html` <a href="${path}#packages">clear</a>` : ""}
</form>
<p class="muted" id="package-count">${q ? `${shown.length} of ${total} packages match “${q}”` : `${total} packages`}</p>
<table class="packages">
<thead><tr><th>name</th><th>version</th><th>arch</th></tr></thead>
<tbody>${shown.map((p) => html`<tr><td>${p.name}</td><td>${p.version}</td><td>${p.arch}</td></tr>`)}</tbody>
</table>`;
}

function howToPull(origin: string, d: VersionDetail, signer: SignerInfo | null): Html {
  const { name, version, manifest: m } = d;
  const zst = m.artifacts.find((a) => a.format === "tar.zst");
  const gz = m.artifacts.find((a) => a.format === "tar.gz");
  // Proxmox names templates <name>_<version>_<debian arch>.tar.zst.
  const pveFile = proxmoxFileName(m);
  const ovzFile = `/vz/template/cache/${name}.tar.gz`;
  // Every value in a command is one shellWord (registry/pages/shell.ts).
  return html`<pre><code>${keyringStep(origin, signer)}templar pull ${shellWord(`${name}@${version}`)} --registry ${shellWord(origin)}</code></pre>
${
  gz
    ? html`<p>OpenVZ, by hand (vzctl takes <code>.tar.gz</code>, not zstd):</p>
<pre><code>curl -fo ${shellWord(ovzFile)} \\
  ${shellWord(`${origin}${blobHref(gz.digest)}`)}
echo ${shellWord(`${parseDigest(gz.digest) ?? ""}  ${ovzFile}`)} | sha256sum -c</code></pre>`
    : ""
}
${
  zst
    ? html`<p>Proxmox VE (downloads and checks the sha256 before storing):</p>
<pre><code>pvesh create /nodes/$(hostname)/storage/local/download-url --content vztmpl \\
  --filename ${shellWord(pveFile)} \\
  --url ${shellWord(`${origin}${blobHref(zst.digest)}`)} \\
  --checksum ${shellWord(parseDigest(zst.digest) ?? "")} --checksum-algorithm sha256</code></pre>`
    : ""
}`;
}
