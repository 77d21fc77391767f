/**
 * The storage layout (docs/storage.md): the only place that builds or parses storage keys.
 * Inputs are validated names, versions, tags, formats and hex digests.
 *
 *   blobs/sha256/<hex>                                 immutable, content-addressed
 *   templates/<name>/versions/<version>.json           immutable manifest (create-if-absent)
 *   templates/<name>/versions/<version>.json.asc       the manifest's signature
 *   templates/<name>/versions/<version>.<format>.asc   an artifact's signature
 *   templates/<name>/tags/<tag>                        mutable pointer: "<version>\n"
 *   uploads/<id>/info                                  a resumable upload: owner, start time
 *   uploads/<id>/p/<offset, 16 digits>                 its bytes, one object per piece
 *   derived/sha256/<hex>.json                          values computed from a blob (md5, sha512)
 *   deltas/<name>/<version>.json                       a version's delta index (patches from older versions)
 *   gc/...                                             garbage collection's marks, pins and runs
 */
export const layout = {
  blobs: "blobs/sha256/",
  blob: (hex: string) => `blobs/sha256/${hex}`,
  templates: "templates/",
  versions: (name: string) => `templates/${name}/versions/`,
  manifest: (name: string, version: string) => `templates/${name}/versions/${version}.json`,
  signature: (name: string, version: string) => `templates/${name}/versions/${version}.json.asc`,
  artifactSignature: (name: string, version: string, format: string) =>
    `templates/${name}/versions/${version}.${format}.asc`,
  tags: (name: string) => `templates/${name}/tags/`,
  tag: (name: string, tag: string) => `templates/${name}/tags/${tag}`,
  uploads: "uploads/",
  upload: (id: string) => `uploads/${id}/`,
  uploadInfo: (id: string) => `uploads/${id}/info`,
  uploadPieces: (id: string) => `uploads/${id}/p/`,
  uploadPiece: (id: string, offset: number) => `uploads/${id}/p/${String(offset).padStart(16, "0")}`,
  derived: (hex: string) => `derived/sha256/${hex}.json`,
  deltaIndexes: "deltas/",
  deltaIndex: (name: string, version: string) => `deltas/${name}/${version}.json`,
  gcMark: (hex: string) => `gc/pending/${hex}`,
  gcMarks: "gc/pending/",
  gcPins: "gc/pins/",
  gcPin: (requestId: string) => `gc/pins/${requestId}`,
  gcRuns: "gc/runs/",
  gcRun: (id: string) => `gc/runs/${id}`,
};

export type TemplateKey =
  | { name: string; kind: "manifest" | "signature"; version: string }
  | { name: string; kind: "artifactSignature"; version: string; format: string }
  | { name: string; kind: "tag"; tag: string };

const ARTIFACT_SIGNATURE = /^(.+?)\.((?:lxc-meta\.|incus-meta\.)?tar\.(?:gz|xz|zst))\.asc$/;

/** Splits a key under templates/ into its parts; null for anything else. */
export function parseTemplateKey(key: string): TemplateKey | null {
  const m = /^templates\/([^/]+)\/(versions|tags)\/([^/]+)$/.exec(key);
  if (!m) return null;
  const [, name, dir, file] = m as unknown as [string, string, string, string];
  if (dir === "tags") return { name, kind: "tag", tag: file };
  if (file.endsWith(".json.asc")) return { name, kind: "signature", version: file.slice(0, -9) };
  if (file.endsWith(".json")) return { name, kind: "manifest", version: file.slice(0, -5) };
  const sig = ARTIFACT_SIGNATURE.exec(file);
  if (sig) return { name, kind: "artifactSignature", version: sig[1]!, format: sig[2]! };
  return null;
}

/** The upload id and piece offset of a key under uploads/; null for anything else. */
export function parseUploadKey(key: string): { id: string; piece: number | null } | null {
  const m = /^uploads\/([^/]+)\/(?:info|p\/(\d{16}))$/.exec(key);
  if (!m) return null;
  return { id: m[1]!, piece: m[2] === undefined ? null : Number(m[2]) };
}

/** The blob a key under blobs/ names; null for anything else. */
export function parseBlobKey(key: string): string | null {
  const m = /^blobs\/sha256\/([0-9a-f]{64})$/.exec(key);
  return m ? m[1]! : null;
}

/** The template and version of a delta index key; null for anything else. */
export function parseDeltaIndexKey(key: string): { name: string; version: string } | null {
  const m = /^deltas\/([^/]+)\/([^/]+)\.json$/.exec(key);
  return m ? { name: m[1]!, version: m[2]! } : null;
}
