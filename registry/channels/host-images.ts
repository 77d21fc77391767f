import { createHash } from "node:crypto";
import { CodedError } from "../../common/error-codes.js";
import type { HostMetaFormat } from "../../common/formats.js";
import { type HostIdentity, hostIdentity } from "../../common/host-identity.js";
import type { Artifact } from "../../common/manifest.js";
import { namePartProblem } from "../../common/names.js";
import { type Ctx, deps, need } from "../http/context.js";
import type { VersionEntry } from "../store/versions.js";
import { exactVersion, pullableTemplates, sendArtifact } from "./serve.js";

/**
 * What LXC's lxc-download index and the Incus simplestreams server share: templates seen as
 * images (README "LXC" and "Incus and LXD"). An image ("product") is one distro, release, arch and
 * variant (the flavour, or `default`); its builds are the template's newest non-pre-release
 * versions that carry rootfs.tar.xz and the client's metadata tarball, at most
 * `compat.hostImageBuilds` of them. Two templates that map to the same image: the first by name
 * serves it.
 *
 * A build is keyed `YYYYMMDD_hhmm` (UTC) from the version's `created`, the form both clients
 * sort and Incus requires; versions of one image created in the same minute are keyed a minute
 * apart, in semver order, so keys stay unique and rise with the version. Everything here is a
 * function of what storage holds, so every replica answers the same bytes.
 */
/** The version a build is: only what the documents need, not the manifest (kept per version). */
export interface BuildVersion {
  version: string;
  lastModified: Date;
}

export interface HostBuild {
  key: string;
  chosen: BuildVersion;
  rootfs: Artifact;
  meta: Artifact;
}

export interface HostImage {
  id: HostIdentity;
  name: string;
  /** Newest first. */
  builds: HostBuild[];
}

const MINUTE = 60_000;
const BATCH = 32;

function stamp(ms: number): string {
  const iso = new Date(ms).toISOString(); // 2026-11-25T00:00:00.000Z
  return `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}_${iso.slice(11, 13)}${iso.slice(14, 16)}`;
}

/** The templates as images, for the caller's pull scope; built once per storage state. */
export async function hostImages(c: Ctx, meta: HostMetaFormat): Promise<HostImage[]> {
  return (await perState(c, `images ${meta}`, () => buildImages(c, meta))) as HostImage[];
}

/**
 * A document rebuilt only when the state it depends on changed: the caller's visible templates
 * and each one's version list (as the store lists them, reused for the version-list TTL). A
 * state key, not a timer, so a push or delete shows at once and an unchanged state costs only
 * the listing.
 */
const caches = new WeakMap<object, Map<string, { state: string; value: Promise<unknown> }>>();

/** Per store (a process may serve more than one), created on first use. */
function cacheOf<V>(map: WeakMap<object, Map<string, V>>, c: Ctx): Map<string, V> {
  const { store } = deps(c);
  let cache = map.get(store);
  if (!cache) {
    cache = new Map();
    map.set(store, cache);
  }
  return cache;
}

export async function perState<T>(c: Ctx, what: string, build: () => Promise<T>): Promise<T> {
  const { store } = deps(c);
  const names = await pullableTemplates(c);
  // One entry per document and view (the templates a caller sees), holding its latest state only.
  const view = `${what}\n${createHash("sha256").update(names.join("\n")).digest("hex")}`;
  const hash = createHash("sha256");
  for (const name of names) {
    const list = await store.versions.list(name);
    hash.update(`\n${name}`);
    for (const e of list.entries) {
      hash.update(` ${e.version.version}@${e.object.size}@${e.object.modified.getTime()}`);
    }
  }
  hash.update(`\n${c.get("config").compat.hostImageBuilds}`);
  const state = hash.digest("hex");
  const cache = cacheOf(caches, c);
  const hit = cache.get(view);
  if (hit?.state === state) return hit.value as Promise<T>;
  const value = build();
  if (cache.size >= 64) cache.clear();
  const entry = { state, value };
  cache.set(view, entry);
  value.catch(() => {
    if (cache.get(view) === entry) cache.delete(view);
  });
  return value;
}

/** A generated document and its ETag, hashed once per state rather than per request. */
export interface StateDocument {
  body: Buffer;
  etag: string;
}

export function perStateDocument(c: Ctx, what: string, build: () => Promise<Buffer>): Promise<StateDocument> {
  return perState(c, what, async () => {
    const body = await build();
    return { body, etag: `"sha256:${createHash("sha256").update(body).digest("hex")}"` };
  });
}

async function buildImages(c: Ctx, meta: HostMetaFormat): Promise<HostImage[]> {
  const { store } = deps(c);
  const limit = c.get("config").compat.hostImageBuilds;
  const images = new Map<string, HostImage>();
  for (const name of await pullableTemplates(c)) {
    const { entries } = await store.versions.list(name);
    const picked: Candidate[] = [];
    let id: HostIdentity | null = null;
    const releases = entries.filter((e) => e.version.prerelease.length === 0);
    // Manifests not seen before are read a batch at a time (a fresh replica reads them all once).
    for (let at = 0; at < releases.length && picked.length < limit; at += BATCH) {
      const batch = releases.slice(at, at + BATCH);
      const found = await Promise.all(batch.map((e) => candidateOf(c, name, e, meta)));
      for (const candidate of found) {
        if (!candidate || picked.length >= limit) continue;
        // One image per template: versions that changed identity (another release) are skipped.
        id ??= candidate.identity;
        if (imageKey(candidate.identity) !== imageKey(id)) continue;
        picked.push(candidate);
      }
    }
    if (!id || picked.length === 0 || images.has(imageKey(id))) continue;
    // Keys from the oldest picked build up, each at least a minute after the one before.
    const builds: HostBuild[] = [];
    let previous = Number.NEGATIVE_INFINITY;
    for (const p of [...picked].reverse()) {
      const at = Math.max(Math.floor(p.chosen.lastModified.getTime() / MINUTE) * MINUTE, previous + MINUTE);
      previous = at;
      builds.unshift({ key: stamp(at), chosen: p.chosen, rootfs: p.rootfs, meta: p.meta });
    }
    images.set(imageKey(id), { id, name, builds });
  }
  return [...images.values()];
}

interface Candidate {
  identity: HostIdentity;
  chosen: BuildVersion;
  rootfs: Artifact;
  meta: Artifact;
}

/**
 * What one version contributes, kept while its manifest object is the same one (manifests are
 * immutable; a version deleted and pushed again is another object): a rebuild after a push then
 * reads only the new manifest, not every version's again.
 */
const candidateCaches = new WeakMap<object, Map<string, Candidate | null>>();

async function candidateOf(
  c: Ctx,
  name: string,
  entry: VersionEntry,
  meta: HostMetaFormat,
): Promise<Candidate | null> {
  const { object } = entry;
  const id = `${meta} ${name}@${entry.version.version} ${object.size} ${object.modified.getTime()}`;
  const candidates = cacheOf(candidateCaches, c);
  const hit = candidates.get(id);
  if (hit !== undefined) return hit;
  const chosen = await exactVersion(c, name, entry.version.version);
  let candidate: Candidate | null = null;
  if (chosen) {
    const identity = hostIdentity(chosen.manifest);
    const rootfs = chosen.manifest.artifacts.find((a) => a.format === "tar.xz");
    const metaArtifact = chosen.manifest.artifacts.find((a) => a.format === meta);
    const complete = meta !== "incus-meta.tar.xz" || metaArtifact?.combinedSha256 !== undefined;
    if (identity && rootfs && metaArtifact && complete) {
      candidate = {
        identity,
        chosen: { version: chosen.version, lastModified: chosen.lastModified },
        rootfs,
        meta: metaArtifact,
      };
    }
  }
  if (candidates.size >= 20_000) candidates.clear();
  candidates.set(id, candidate);
  return candidate;
}

function imageKey(id: HostIdentity): string {
  return `${id.distro}:${id.release}:${id.arch}:${id.variant}`;
}

/** Aliases an image answers to: debian/13, debian/trixie, debian/13/<flavour>, the template name. */
export function aliasesOf(image: HostImage): string[] {
  const { distro, release, codename, variant } = image.id;
  const releases = codename ? [release, codename] : [release];
  const out: string[] = [];
  for (const r of releases) {
    if (variant === "default") out.push(`${distro}/${r}`);
    out.push(`${distro}/${r}/${variant}`);
  }
  out.push(image.name);
  return out;
}

/** The build a file path names: /<prefix>/<dist>/<release>/<arch>/<variant>/<build>/<file>. */
export async function findBuild(
  c: Ctx,
  meta: HostMetaFormat,
  parts: { dist: string; release: string; arch: string; variant: string; build: string },
  archOf: (id: HostIdentity) => string,
): Promise<{ image: HostImage; build: HostBuild }> {
  for (const value of Object.values(parts)) {
    if (namePartProblem(value) !== null) throw new CodedError("NOT_FOUND", "no such image file");
  }
  for (const image of await hostImages(c, meta)) {
    const { id } = image;
    if (id.distro !== parts.dist || archOf(id) !== parts.arch || id.variant !== parts.variant) continue;
    if (id.release !== parts.release && id.codename !== parts.release) continue;
    const build = image.builds.find((b) => b.key === parts.build);
    if (build) return { image, build };
  }
  throw new CodedError(
    "TEMPLATE_UNKNOWN",
    `no image ${parts.dist}/${parts.release}/${parts.arch}/${parts.variant} build ${parts.build}`,
  );
}

/**
 * Serves one file of an image directory, as both clients lay it out:
 * .../<dist>/<release>/<arch>/<variant>/<build>/<file>, where `file` is the root filesystem or
 * the client's metadata tarball (`metaFile`), and `distParam` names the route's first part.
 */
export async function sendImageFile(
  c: Ctx,
  meta: HostMetaFormat,
  metaFile: string,
  distParam: string,
  archOf: (id: HostIdentity) => string,
): Promise<Response> {
  const file = c.req.param("file");
  if (file !== "rootfs.tar.xz" && file !== metaFile) {
    throw new CodedError("NOT_FOUND", `no image file ${JSON.stringify(file)} (rootfs.tar.xz, ${metaFile})`);
  }
  const { image, build } = await findBuild(
    c,
    meta,
    {
      dist: c.req.param(distParam) ?? "",
      release: c.req.param("release") ?? "",
      arch: c.req.param("arch") ?? "",
      variant: c.req.param("variant") ?? "",
      build: c.req.param("build") ?? "",
    },
    archOf,
  );
  need(c, "pull", image.name);
  c.header("X-Template-Version", build.chosen.version);
  return sendArtifact(c, file === "rootfs.tar.xz" ? build.rootfs : build.meta, build.chosen.lastModified);
}
