/** Storage keys (DESIGN.md "Storage" layout), built in one place. Inputs are validated names. */
export const keys = {
  templates: "templates/",
  template: (name: string) => `templates/${name}/`,
  versions: (name: string) => `templates/${name}/versions/`,
  manifest: (name: string, version: string) => `templates/${name}/versions/${version}.json`,
  signature: (name: string, version: string) => `templates/${name}/versions/${version}.json.asc`,
  /** Detached signature of one artifact (what vztmpl-dl fetches as `<file>.asc`). */
  artifactSignature: (name: string, version: string, format: string) =>
    `templates/${name}/versions/${version}.${format}.asc`,
  /** Values derived from a blob (md5/sha512 for aplinfo.dat): recomputable, deleted with the blob. */
  derived: (hex: string) => `derived/sha256/${hex}.json`,
  /** Written by GC before it deletes an unreferenced blob; a manifest PUT naming it backs off (gc.ts). */
  gcPending: (hex: string) => `gc/pending/${hex}`,
  gcPendingPrefix: "gc/pending/",
  /** A GC run's heartbeat: its marks count only while it is fresh (gc-protocol.ts). */
  gcRun: (runId: string) => `gc/runs/${runId}`,
  gcRunsPrefix: "gc/runs/",
  /** The blobs a manifest being published names, kept from GC until the manifest exists. */
  gcPin: (requestId: string) => `gc/pins/${requestId}`,
  gcPinsPrefix: "gc/pins/",
  tags: (name: string) => `templates/${name}/tags/`,
  tag: (name: string, tag: string) => `templates/${name}/tags/${tag}`,
};

/** Splits a key under templates/ into its parts; null for anything else. */
export function parseTemplateKey(
  key: string,
):
  | { name: string; kind: "manifest" | "signature"; version: string }
  | { name: string; kind: "tag"; tag: string }
  | null {
  const m = /^templates\/([^/]+)\/(versions|tags)\/([^/]+)$/.exec(key);
  if (!m) return null;
  const [, name, dir, file] = m as unknown as [string, string, string, string];
  if (dir === "tags") return { name, kind: "tag", tag: file };
  if (file.endsWith(".json.asc")) return { name, kind: "signature", version: file.slice(0, -9) };
  if (file.endsWith(".json")) return { name, kind: "manifest", version: file.slice(0, -5) };
  return null;
}
