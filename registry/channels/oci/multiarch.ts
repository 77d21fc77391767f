import { ARCHES } from "../../../common/arch.js";
import { sha256Hex } from "../../../common/digest.js";
import { allowed } from "../../auth.js";
import { type Ctx, deps } from "../../http/context.js";
import { OciError } from "./errors.js";
import { MEDIA, type OciDocument, type OciImage } from "./image.js";

/**
 * Multi-arch repositories. Templates are built per architecture and named for it
 * (`debian-13-x86_64-minimal`, `debian-13-aarch64-minimal`); the name without its arch part
 * (`debian-13-minimal`) is a repository too, whose image index lists every arch's images for a
 * tag, so one reference serves every host and the client picks its platform (as pct does).
 * A name that is a template itself is always that template.
 */
const TEMPLATE_ARCHES = new Map(ARCHES.map((a, i) => [a.template, i]));

/** `name` without its arch part, or null when it has none. */
export function archFreeName(name: string): string | null {
  const parts = name.split("-");
  const at = parts.findIndex((p) => TEMPLATE_ARCHES.has(p));
  if (at < 0) return null;
  parts.splice(at, 1);
  return parts.join("-");
}

function archRank(name: string): number {
  return TEMPLATE_ARCHES.get(name.split("-").find((p) => TEMPLATE_ARCHES.has(p)) ?? "") ?? 99;
}

export interface Repo {
  /** The repository path as the client wrote it. */
  path: string;
  /** The template name it stands for (for a multi-arch repository, its arch-free name). */
  name: string;
  /** Templates behind it: the template itself, or one per arch in the arch table's order. */
  members: string[];
}

/** Arch-free names that stand for two or more templates the caller may pull (for _catalog). */
export function multiArchNames(pullable: string[]): string[] {
  const count = new Map<string, number>();
  for (const name of pullable) {
    const free = archFreeName(name);
    if (free) count.set(free, (count.get(free) ?? 0) + 1);
  }
  const own = new Set(pullable);
  return [...count].filter(([free, n]) => n >= 2 && !own.has(free)).map(([free]) => free);
}

/**
 * The repository `name` names: the template of that name when it has versions, else the
 * templates of every arch whose arch-free name it is and the caller may pull. NAME_UNKNOWN
 * when there are none; when there are some the caller may not pull, the usual 401/403.
 */
export async function resolveRepo(
  c: Ctx,
  path: string,
  name: string,
  needPull: (name: string) => void,
): Promise<Repo> {
  const { store } = deps(c);
  if ((await store.versions.list(name)).entries.length > 0) {
    needPull(name);
    return { path, name, members: [name] };
  }
  const all = (await store.catalog.entries()).map((e) => e.name).filter((n) => archFreeName(n) === name);
  const members = all
    .filter((n) => allowed(c.get("principal"), "pull", n, c.get("config")))
    .sort((a, b) => archRank(a) - archRank(b));
  if (members.length === 0 && all.length > 0) needPull(all[0]!);
  if (members.length === 0) throw new OciError("NAME_UNKNOWN", `repository ${path} is not known`);
  return { path, name, members };
}

/** One image index over the images of several arches (each arch's entries in its own order). */
export function combinedIndex(images: OciImage[]): OciDocument {
  const manifests = images.flatMap((image) => JSON.parse(image.index.bytes.toString("utf8")).manifests);
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.index, manifests }), "utf8");
  return { mediaType: MEDIA.index, hex: sha256Hex(bytes), bytes };
}
