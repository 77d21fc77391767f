import { CodedError } from "../../common/error-codes.js";
import { type Ctx, deps, nameParam, need, versionParam } from "../http/context.js";

/**
 * GET /v1/templates/{name}/{version}/deltas: the version's delta index (common/delta.ts): for
 * each patch, the tar it starts from (`fromTarSha256`), its blob digest, size and zstd window.
 * Before the index is made (right after a push, or if the process making it died) the answer is
 * an empty list with `"pending": true`, and making it is queued.
 */
export async function getDeltas(c: Ctx): Promise<Response> {
  const name = nameParam(c);
  const version = versionParam(c);
  need(c, "pull", name);
  const { store, deltas } = deps(c);
  const manifest = await store.manifests.manifest(name, version);
  if (!manifest) throw new CodedError("VERSION_UNKNOWN", `${name}@${version} does not exist`);
  c.header("Cache-Control", "no-cache");
  const index = await store.deltas.get(name, version);
  if (index && index.tarSha256 === manifest.rootfs.tarSha256) return c.json(index, 200);
  deltas?.schedule(name, version);
  return c.json(
    { schemaVersion: 1, name, version, tarSha256: manifest.rootfs.tarSha256, deltas: [], pending: true },
    200,
  );
}
