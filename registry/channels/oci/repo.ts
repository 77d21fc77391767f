import { sha256Hex } from "../../../common/digest.js";
import { CodedError } from "../../../common/error-codes.js";
import { parseManifest } from "../../../common/manifest.js";
import { isTag, isVersion, templateNameProblem } from "../../../common/names.js";
import { type Ctx, deps } from "../../http/context.js";
import { mapLimit } from "../../store/store.js";
import type { VersionEntry } from "../../store/versions.js";
import { pullableTemplates } from "../serve.js";
import { OciError } from "./errors.js";
import { deriveImage, type OciDocument, type OciImage } from "./image.js";
import { combinedIndex, multiArchNames, type Repo } from "./multiarch.js";

/**
 * Repositories, tags and digests of the /v2 view, read through the store.
 *
 * A repository is a template name, under `oci.prefix` when the config sets one
 * (`<prefix>/<name>`). Its tags are every version (templar versions carry no `+build` part, so
 * each is a valid OCI tag), every templar tag, and `latest`; a semver range is not a tag.
 */

/** The OCI spec's tag grammar. */
const OCI_TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;

export function prefixOf(c: Ctx): string {
  return c.get("config").oci.prefix ?? "";
}

/** Template name of a repository path, or an OCI NAME_UNKNOWN / NAME_INVALID. */
export function templateOfRepo(c: Ctx, repo: string): string {
  const prefix = prefixOf(c);
  let name = repo;
  if (prefix) {
    if (!repo.startsWith(`${prefix}/`)) throw new OciError("NAME_UNKNOWN", `repository ${repo} is not known`);
    name = repo.slice(prefix.length + 1);
  }
  const problem = templateNameProblem(name);
  if (problem) throw new OciError("NAME_INVALID", `repository ${JSON.stringify(repo)}: ${problem}`);
  return name;
}

export function repoOfTemplate(c: Ctx, name: string): string {
  const prefix = prefixOf(c);
  return prefix ? `${prefix}/${name}` : name;
}

/** Repositories the caller may pull, sorted (the catalog): templates and multi-arch names. */
export async function repositories(c: Ctx): Promise<string[]> {
  const pullable = await pullableTemplates(c);
  return [...pullable, ...multiArchNames(pullable)].map((n) => repoOfTemplate(c, n)).sort();
}

/** Every tag of a repository (for several arches: of any of them), sorted. */
export async function tagsOf(c: Ctx, repo: Repo): Promise<string[]> {
  const tags = new Set<string>();
  for (const member of repo.members) for (const tag of await templateTags(c, member)) tags.add(tag);
  return [...tags].sort();
}

/** Every tag of a template, sorted; NAME_UNKNOWN when it has no version. */
async function templateTags(c: Ctx, name: string): Promise<string[]> {
  const { store } = deps(c);
  const { entries } = await store.versions.list(name);
  if (entries.length === 0)
    throw new OciError("NAME_UNKNOWN", `repository ${repoOfTemplate(c, name)} is not known`);
  const tags = new Set(entries.map((e) => e.version.version).filter((t) => OCI_TAG.test(t)));
  for (const tag of Object.keys(await store.tags.all(name))) tags.add(tag);
  if (entries.some((e) => e.version.prerelease.length === 0)) tags.add("latest");
  return [...tags].sort();
}

/** The version an OCI tag names: a version, a templar tag or `latest`. */
export async function versionOfTag(
  c: Ctx,
  name: string,
  tag: string,
): Promise<{ version: string; bytes: Buffer }> {
  const unknown = () =>
    new OciError("MANIFEST_UNKNOWN", `${repoOfTemplate(c, name)} has no tag ${JSON.stringify(tag)}`);
  if (!OCI_TAG.test(tag)) throw unknown();
  const ref = isVersion(tag) || isTag(tag) ? tag : null;
  if (ref === null) throw unknown();
  try {
    const resolved = await deps(c).store.versions.resolve(name, ref);
    return { version: resolved.version, bytes: resolved.manifest };
  } catch (err) {
    if (err instanceof CodedError && err.code === "TEMPLATE_UNKNOWN") throw err;
    if (err instanceof CodedError && err.status === 404) {
      if ((await deps(c).store.versions.list(name)).entries.length === 0)
        throw new OciError("NAME_UNKNOWN", `repository ${repoOfTemplate(c, name)} is not known`);
      throw unknown();
    }
    throw err;
  }
}

/**
 * Derived images are pure functions of the manifest bytes, so each process keeps the ones it
 * made, keyed by the bytes' digest (a version deleted and pushed again with other bytes is a new key).
 */
const images = new Map<string, OciImage | null>();

export function imageOf(bytes: Buffer, where: string): OciImage | null {
  const hex = sha256Hex(bytes);
  if (images.has(hex)) return images.get(hex) ?? null;
  const image = deriveImage(parseManifest(bytes, where), hex);
  if (images.size > 10_000) images.clear();
  images.set(hex, image);
  return image;
}

export type Found = { kind: "document"; doc: OciDocument } | { kind: "layer"; hex: string; size: number };

/**
 * Every digest a repository serves (indexes, manifests, configs and layers of all its versions),
 * rebuilt whenever the store hands out a new version list for the name (its TTL, or a change
 * through this process): a version pushed through another replica is found within that TTL.
 */
const repoDigests = new WeakMap<object, Promise<Map<string, Found>>>();

async function digestsOf(c: Ctx, name: string, entries: VersionEntry[]): Promise<Map<string, Found>> {
  const { store } = deps(c);
  const byHex = new Map<string, Found>();
  const all = await mapLimit(entries, 16, async (e) => {
    const bytes = await store.versions.manifestOf(name, e);
    return bytes ? imageOf(bytes, `${name}@${e.version.version}`) : null;
  });
  for (const image of all) {
    if (!image) continue;
    byHex.set(image.index.hex, { kind: "document", doc: image.index });
    byHex.set(image.config.hex, { kind: "document", doc: image.config });
    for (const m of image.manifests) {
      byHex.set(m.manifest.hex, { kind: "document", doc: m.manifest });
      const hex = m.layer.digest.slice("sha256:".length);
      byHex.set(hex, { kind: "layer", hex, size: m.layer.size });
    }
  }
  return byHex;
}

/** What `hex` is within template `name`, or null. */
async function templateDigest(c: Ctx, name: string, hex: string): Promise<Found | null> {
  const list = await deps(c).store.versions.list(name);
  let pending = repoDigests.get(list);
  if (!pending) {
    pending = digestsOf(c, name, list.entries);
    repoDigests.set(list, pending);
  }
  return (await pending).get(hex) ?? null;
}

/**
 * The image index a tag names: the template's own, or for a multi-arch repository one over
 * the images of every arch that has the tag. MANIFEST_UNKNOWN when none has an OCI image.
 */
export async function indexOfTag(
  c: Ctx,
  repo: Repo,
  tag: string,
): Promise<{ index: OciDocument; first: OciDocument }> {
  const images: OciImage[] = [];
  let why: unknown = null;
  for (const member of repo.members) {
    try {
      const { version, bytes } = await versionOfTag(c, member, tag);
      const image = imageOf(bytes, `${member}@${version}`);
      if (image) images.push(image);
      else
        why = new OciError(
          "MANIFEST_UNKNOWN",
          `${member}@${version} has no tar.gz or tar.zst artifact, which an OCI image needs`,
        );
    } catch (err) {
      if (repo.members.length === 1 || !(err instanceof OciError)) throw err;
      why = err;
    }
  }
  const first = images[0];
  if (!first) throw why ?? new OciError("MANIFEST_UNKNOWN", `${repo.path} has no tag ${JSON.stringify(tag)}`);
  const index = repo.members.length === 1 ? first.index : combinedIndex(images);
  return { index, first: first.manifests[0]!.manifest };
}

/**
 * What `hex` is within a repository, or null: a document or layer of one of its templates, or
 * (multi-arch) the combined index of one of its tags.
 */
export async function findDigest(c: Ctx, repo: Repo, hex: string): Promise<Found | null> {
  for (const member of repo.members) {
    const found = await templateDigest(c, member, hex);
    if (found) return found;
  }
  if (repo.members.length === 1) return null;
  for (const tag of await tagsOf(c, repo)) {
    const { index } = await indexOfTag(c, repo, tag).catch(() => ({ index: null }));
    if (index?.hex === hex) return { kind: "document", doc: index };
  }
  return null;
}
