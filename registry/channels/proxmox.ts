import { gzipSync } from "node:zlib";
import { parseDigest, sha256Hex } from "../../common/digest.js";
import { CodedError } from "../../common/error-codes.js";
import type { Format } from "../../common/formats.js";
import type { Artifact, Manifest } from "../../common/manifest.js";
import { proxmoxArch, proxmoxFileName } from "../../common/manifest-files.js";
import { isVersion, templateNameProblem } from "../../common/names.js";
import { type Ctx, deps, need } from "../http/context.js";
import { indexKey, signIndex } from "../trust.js";
import { type AplinfoRecord, PROXMOX_VERSION, renderAplinfo } from "./aplinfo.js";
import type { HostChannel } from "./channel.js";
import { chooseVersion, exactVersion, pullableTemplates, sendArtifact, sendSmall } from "./serve.js";

/**
 * Proxmox's appliance index and template files, as pveam reads them (docs/http-api.md "Host channels"):
 *
 *   GET /aplinfo.dat        one stanza per template: its newest non-pre-release version
 *   GET /aplinfo.dat.gz     the same, gzipped (what `pveam update` fetches)
 *   GET /aplinfo.dat.asc    detached signature over the UNCOMPRESSED index, by the index key
 *   GET|HEAD /proxmox/<name>_<version>_<arch>.tar.zst   the file a Location names
 *
 * Proxmox wants tar.zst; a template without one is offered as tar.gz or tar.xz, which pct reads too.
 */
const PREFERRED: Format[] = ["tar.zst", "tar.gz", "tar.xz"];

export function proxmoxArtifact(manifest: Manifest): Artifact | null {
  for (const format of PREFERRED) {
    const artifact = manifest.artifacts.find((a) => a.format === format);
    if (artifact) return artifact;
  }
  return null;
}

interface BuiltIndex {
  text: string;
  lastModified: Date | null;
}

/**
 * The index is rebuilt at most once per version-list TTL (config cacheTtl, 2 s by default) for
 * each caller identity: pveam fetches .gz and .asc back to back, and many hosts update at once.
 */
const built = new Map<string, { at: number; value: Promise<BuiltIndex> }>();

function buildIndex(c: Ctx): Promise<BuiltIndex> {
  const principal = c.get("principal");
  const id = `${principal.kind === "token" ? principal.id : "anonymous"} ${new URL(c.req.url).origin}`;
  const ttl = deps(c).store.versions.ttlMs;
  const hit = built.get(id);
  if (hit && Date.now() - hit.at < ttl) return hit.value;
  const value = renderIndex(c);
  if (built.size > 1000) built.clear();
  built.set(id, { at: Date.now(), value });
  value.catch(() => built.delete(id));
  return value;
}

async function renderIndex(c: Ctx): Promise<BuiltIndex> {
  const config = c.get("config");
  const base = (config.compat.publicUrl ?? new URL(c.req.url).origin).replace(/\/+$/, "");
  const records: AplinfoRecord[] = [];
  let newest = 0;
  for (const name of await pullableTemplates(c)) {
    const chosen = await chooseVersion(c, name, null);
    if (!chosen || !PROXMOX_VERSION.test(chosen.version)) continue;
    const artifact = proxmoxArtifact(chosen.manifest);
    if (!artifact) continue;
    const sums = await deps(c).store.derived.of(parseDigest(artifact.digest)!);
    records.push({
      manifest: chosen.manifest,
      location: `proxmox/${proxmoxFileName(chosen.manifest, artifact.format as Format)}`,
      md5: sums.md5,
      sha512: sums.sha512,
      infopage: `${base}/templates/${encodeURIComponent(name)}/${encodeURIComponent(chosen.version)}`,
      maintainer: config.compat.maintainer,
    });
    newest = Math.max(newest, chosen.lastModified.getTime());
  }
  return { text: renderAplinfo(records), lastModified: newest ? new Date(newest) : null };
}

export async function getAplinfo(c: Ctx): Promise<Response> {
  const { text, lastModified } = await buildIndex(c);
  const body = Buffer.from(text, "utf8");
  return sendSmall(c, body, "text/plain; charset=utf-8", lastModified, `"sha256:${sha256Hex(body)}"`);
}

export async function getAplinfoGz(c: Ctx): Promise<Response> {
  const { text, lastModified } = await buildIndex(c);
  const body = gzipSync(Buffer.from(text, "utf8"), { level: 9 });
  return sendSmall(c, body, "application/gzip", lastModified, `"sha256:${sha256Hex(body)}"`);
}

export async function getAplinfoSignature(c: Ctx): Promise<Response> {
  const key = await indexKey(c, c.get("config"));
  if (!key) {
    throw new CodedError(
      "INDEX_UNSIGNED",
      "this registry has no index key (config indexKey), so aplinfo.dat is unsigned",
    );
  }
  const { text, lastModified } = await buildIndex(c);
  const signature = Buffer.from(await signIndex(key, text, sha256Hex(text)), "utf8");
  return sendSmall(
    c,
    signature,
    "application/pgp-signature",
    lastModified,
    `"sha256:${sha256Hex(signature)}"`,
  );
}

const FILE = /^(.+)_([^_]+)_([^_]+)\.(tar\.zst|tar\.gz|tar\.xz)$/;

export async function getProxmoxFile(c: Ctx): Promise<Response> {
  const file = c.req.param("file") ?? "";
  const m = FILE.exec(file);
  const [, name = "", version = "", arch = "", format = ""] = m ?? [];
  if (!m || templateNameProblem(name) !== null || !isVersion(version)) {
    throw new CodedError(
      "NOT_FOUND",
      `no template file ${JSON.stringify(file)} (expected <name>_<version>_<arch>.tar.zst)`,
    );
  }
  need(c, "pull", name);
  // Any existing version: an index fetched before a newer push still names downloadable files.
  const chosen = await exactVersion(c, name, version);
  const artifact = chosen?.manifest.artifacts.find((a) => a.format === format);
  if (!chosen || !artifact || proxmoxArch(chosen.manifest) !== arch) {
    throw new CodedError("TEMPLATE_UNKNOWN", `no template file ${file}`);
  }
  return sendArtifact(c, artifact, chosen.lastModified);
}

export const proxmox: HostChannel = {
  name: "Proxmox pveam",
  paths: ["/aplinfo.dat*", "/proxmox/*"],
  routes(app) {
    app.get("/aplinfo.dat", getAplinfo);
    app.get("/aplinfo.dat.gz", getAplinfoGz);
    app.get("/aplinfo.dat.asc", getAplinfoSignature);
    app.get("/proxmox/:file", getProxmoxFile);
  },
};
