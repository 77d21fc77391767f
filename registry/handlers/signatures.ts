import { parseDigest } from "../../common/digest.js";
import { CodedError } from "../../common/error-codes.js";
import { ARTIFACT_FORMATS, type ArtifactFormat, isArtifactFormat } from "../../common/formats.js";
import { readLimited } from "../http/body.js";
import { type Ctx, deps, nameParam, need, versionParam } from "../http/context.js";
import { enforceArtifactPolicy } from "../trust.js";
import { checkArmour, MAX_SIGNATURE_BYTES } from "./manifests.js";

/**
 * Artifact signatures: `GET`/`PUT /v1/templates/{name}/{version}/signature/{format}` (format
 * tar.gz, tar.xz or tar.zst). They are what vztmpl-dl fetches as `/precreated/<file>.asc`, made
 * by the maintainer beside each artifact; like the manifest's, they are create-if-absent.
 */
function formatParam(c: Ctx): ArtifactFormat {
  const format = c.req.param("format") ?? "";
  if (!isArtifactFormat(format)) {
    throw new CodedError(
      "FORMAT_INVALID",
      `format ${JSON.stringify(format)}: expected ${ARTIFACT_FORMATS.join(", ")}`,
    );
  }
  return format;
}

export async function getArtifactSignature(c: Ctx): Promise<Response> {
  const name = nameParam(c);
  const version = versionParam(c);
  const format = formatParam(c);
  need(c, "pull", name);
  const sig = await deps(c).store.manifests.artifactSignature(name, version, format);
  if (!sig)
    throw new CodedError("SIGNATURE_UNKNOWN", `the ${format} artifact of ${name}@${version} is not signed`);
  c.header("Content-Type", "application/pgp-signature");
  c.header("Content-Length", String(sig.length));
  if (c.req.method === "HEAD") return c.body(null, 200);
  return c.body(new Uint8Array(sig), 200);
}

export async function putArtifactSignature(c: Ctx): Promise<Response> {
  const name = nameParam(c);
  const version = versionParam(c);
  const format = formatParam(c);
  need(c, "push", name);
  const { store } = deps(c);
  const sig = await readLimited(c, MAX_SIGNATURE_BYTES, "signature");
  await checkArmour(sig);
  const manifest = await store.manifests.manifest(name, version);
  if (!manifest)
    throw new CodedError("VERSION_UNKNOWN", `${name}@${version} does not exist; push its manifest first`);
  const artifact = manifest.artifacts.find((a) => a.format === format);
  if (!artifact) throw new CodedError("ARTIFACT_UNKNOWN", `${name}@${version} has no ${format} artifact`);
  const hex = parseDigest(artifact.digest)!;
  await enforceArtifactPolicy(
    c,
    sig,
    async () => {
      const stream = await store.blobs.read(hex);
      if (!stream) throw new CodedError("BLOB_UNKNOWN", `blob ${artifact.digest} does not exist`);
      return stream;
    },
    `${name}@${version} ${format} signature`,
  );
  const created = await store.manifests.putArtifactSignature(name, version, format, sig);
  return c.json({ name, version, format, signed: true }, created ? 201 : 200);
}
