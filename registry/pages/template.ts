import { html } from "hono/html";
import { archAs } from "../../common/arch.js";
import { hostIdentity } from "../../common/host-identity.js";
import { repoOfTemplate } from "../channels/oci/repo.js";
import type { Ctx } from "../http/context.js";
import { type SignerInfo, signerOf } from "../signers.js";
import { publicOrigin, templateInfo } from "./data.js";
import { formatTime, type Html, layout, sizesList, templateHref } from "./layout.js";
import { shellWord } from "./shell.js";
import { keyringStep, signerCell } from "./trust.js";

type Shown = Awaited<ReturnType<typeof templateInfo>>["versions"][number];

/** `GET /templates/{name}`: versions newest first, tags, and how to get the template. */
export async function templatePage(c: Ctx): Promise<Response> {
  const info = await templateInfo(c);
  const { name, tags, versions } = info;
  const latest = tags.latest ?? versions[0]?.version ?? null;
  const shown = versions.find((v) => v.version === latest) ?? versions[0];
  const origin = publicOrigin(c);

  const tagsOf = new Map<string, string[]>();
  for (const [tag, version] of Object.entries(tags).sort(([a], [b]) => (a < b ? -1 : 1))) {
    tagsOf.set(version, [...(tagsOf.get(version) ?? []), tag]);
  }
  const signers = await Promise.all(versions.map((v) => (v.signed ? signerOf(c, name, v.version) : null)));
  const signerOfVersion = new Map(versions.map((v, i) => [v.version, signers[i] ?? null]));
  const facts = [shown?.distro, shown?.release, shown?.arch, shown?.flavour].filter(Boolean).join(" · ");

  const body = html`<h1>${name}</h1>
<p class="lead">${shown?.description ?? ""}${facts ? html` <span class="muted">(${facts})</span>` : ""}</p>
<h2>How to pull</h2>
${howToPull(origin, name, latest, shown ? (signerOfVersion.get(shown.version) ?? null) : null)}
${shown ? hostCommands(origin, name, shown) : ""}
${ociPull(origin, repoOfTemplate(c, name), latest)}
<h2>Versions</h2>
<table class="versions">
<thead><tr><th>version</th><th>tags</th><th>created</th><th>pushed</th><th>download (per format)</th><th>signed by</th></tr></thead>
<tbody>
${versions.map(
  (v) => html`<tr>
<td><a href="${templateHref(name, v.version)}">${v.version}</a></td>
<td>${(tagsOf.get(v.version) ?? []).map((t) => html`<span class="tag">${t}</span>`)}</td>
<td>${formatTime(v.created)}</td>
<td>${formatTime(v.pushed)}</td>
<td>${sizesList(v.artifacts, { name, version: v.version })}</td>
<td>${signerCell(signerOfVersion.get(v.version) ?? null)}</td>
</tr>`,
)}
</tbody>
</table>`;
  return c.html(layout(name, [{ label: "templates", href: "/" }, { label: name }], body));
}

/** The three ways in: templar itself, OpenVZ's vztmpl-dl, Proxmox's pveam index. */
function howToPull(origin: string, name: string, latest: string | null, signer: SignerInfo | null): Html {
  const major = latest?.split(".")[0];
  // Every value in a command is one shellWord (registry/pages/shell.ts); download.conf is sourced by a shell.
  const registry = shellWord(origin);
  return html`<p>With templar (verifies every byte, resumes, writes atomically):</p>
<pre><code>${keyringStep(origin, signer)}templar pull ${shellWord(name)} --registry ${registry}${
    latest
      ? html`
templar pull ${shellWord(`${name}@${latest}`)} --registry ${registry}
templar pull ${shellWord(`${name}@^${major}`)} --registry ${registry}   # newest ${major}.x`
      : ""
  }</code></pre>
<p>OpenVZ <code>vztmpl-dl</code> (newest version as <code>${name}.tar.gz</code>): in <code>/etc/vz/download.conf</code> set</p>
<pre><code>TEMPLATE_REPOS=${shellWord(`${origin}/precreated`)}${
    signer?.fingerprint
      ? html`
CHECK_TEMPLATE_SIG=yes
GPG_KEY=${signer.fingerprint}`
      : ""
  }</code></pre>
${
  signer?.fingerprint
    ? html`<p>vztmpl-dl checks signatures with root's gpg keyring:</p>
<pre><code>curl -fsS ${shellWord(`${origin}${signer.keyHref}`)} | gpg --import</code></pre>`
    : ""
}
<p>then <code>vztmpl-dl --update ${shellWord(name)}</code>, or just <code>vzctl create ID --ostemplate ${shellWord(name)}</code>.</p>
<p>Proxmox: the registry's signed index for <code>pveam</code> is <a href="/aplinfo.dat"><code>${origin}/aplinfo.dat</code></a>; a version's page shows a checked <code>pvesh … download-url</code> command.</p>`;
}

/**
 * Proxmox VE 9 and other OCI clients: the image reference (host without scheme, as OCI
 * references are written) and the stock pvesh call behind the GUI's "Pull from OCI Registry".
 */
function ociPull(origin: string, repo: string, latest: string | null): Html {
  const reference = `${new URL(origin).host}/${repo}:${latest ?? "latest"}`;
  const ref = shellWord(reference);
  return html`<h3>Proxmox VE 9 and OCI clients</h3>
<p>OCI image reference: <code class="oci-ref">${reference}</code></p>
<pre><code>pvesh create /nodes/$(hostname)/storage/local/oci-registry-pull --reference ${ref}</code></pre>
<p>or in the GUI: <em>Datacenter → node → storage (local) → CT Templates → Pull from OCI Registry</em>, reference <code>${reference}</code>. The host must trust the registry's TLS certificate. Elsewhere:</p>
<pre><code>skopeo copy docker://${ref} oci-archive:${shellWord(`${repo.split("/").pop()}.tar`)}
podman pull ${ref}</code></pre>`;
}

/**
 * LXC's `lxc-create -t download` and Incus's simplestreams remote, when the version shown carries
 * their metadata (packed with --formats lxc / incus). Both clients speak HTTPS only.
 */
function hostCommands(origin: string, name: string, shown: Shown): Html {
  const formats = new Set(shown.artifacts.map((a) => a.format));
  const id = hostIdentity({
    name,
    distro: shown.distro ?? undefined,
    release: shown.release ?? undefined,
    arch: shown.arch ?? undefined,
    flavour: shown.flavour ?? undefined,
  });
  if (!id || !formats.has("tar.xz")) return html``;
  const host = new URL(origin).host;
  const https = origin.startsWith("https:")
    ? ""
    : html`<p class="muted">Both need this registry served over HTTPS (templar serve --tls-cert/--tls-key).</p>`;
  const variant = id.variant === "default" ? "" : ` --variant ${shellWord(id.variant)}`;
  const alias =
    id.variant === "default" ? `${id.distro}/${id.release}` : `${id.distro}/${id.release}/${id.variant}`;
  const lxc = formats.has("lxc-meta.tar.xz")
    ? html`<p>LXC (<code>lxc-create -t download</code>, newest build):</p>
<pre><code>lxc-create -t download -n c1 -- --server ${shellWord(host)} --dist ${shellWord(id.distro)} --release ${shellWord(id.release)} --arch ${shellWord(archAs(id.arch, "debian"))}${variant}</code></pre>`
    : "";
  const incus = formats.has("incus-meta.tar.xz")
    ? html`<p>Incus (or LXD with <code>lxc</code> for <code>incus</code>), a simplestreams remote:</p>
<pre><code>incus remote add templar ${shellWord(`https://${host}`)} --protocol simplestreams --public
incus launch ${shellWord(`templar:${alias}`)} c1</code></pre>`
    : "";
  if (!lxc && !incus) return html``;
  return html`<h2>LXC and Incus</h2>
${https}${lxc}${incus}`;
}
