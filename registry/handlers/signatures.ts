import { parseDigest } from "../../common/digest.js";
import { FORMATS, type Format, parseManifest } from "../../common/manifest.js";
import { readLimited } from "../body.js";
import { type Ctx, deps, nameParam, need, versionParam } from "../context.js";
import { ApiError, badRequest, notFound } from "../errors.js";
import { keys } from "../keys.js";
import { putImmutable } from "../storage/storage.js";
import { enforceArtifactPolicy } from "../trust.js";
import { checkArmour, MAX_SIGNATURE_BYTES } from "./manifests.js";

/**
 * Artifact signatures: `GET`/`PUT /v1/templates/{name}/{version}/signature/{format}` (format
 * tar.gz, tar.xz or tar.zst). They are what vztmpl-dl fetches as `/precreated/<file>.asc`, made
 * by the maintainer beside each artifact; like the manifest's, they are create-if-absent.
 */
function formatParam(c: Ctx): Format {
  const format = c.req.param("format") ?? "";
  if (!(FORMATS as readonly string[]).includes(format)) {
    throw badRequest("FORMAT_INVALID", `format ${JSON.stringify(format)}: expected ${FORMATS.join(", ")}`);
  }
  return format as Format;
}

export async function getArtifactSignature(c: Ctx): Promise<Response> {
  const name = nameParam(c);
  const version = versionParam(c);
  const format = formatParam(c);
  need(c, "pull", name);
  const sig = await deps(c).storage.getObject(keys.artifactSignature(name, version, format));
  if (!sig) throw notFound("SIGNATURE_UNKNOWN", `the ${format} artifact of ${name}@${version} is not signed`);
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
  const { storage } = deps(c);
  const sig = await readLimited(c, MAX_SIGNATURE_BYTES, "signature");
  await checkArmour(sig);
  const bytes = await storage.getObject(keys.manifest(name, version));
  if (!bytes) throw notFound("VERSION_UNKNOWN", `${name}@${version} does not exist; push its manifest first`);
  const artifact = parseManifest(bytes).artifacts.find((a) => a.format === format);
  if (!artifact) throw notFound("ARTIFACT_UNKNOWN", `${name}@${version} has no ${format} artifact`);
  const hex = parseDigest(artifact.digest)!;
  await enforceArtifactPolicy(
    c,
    sig,
    async () => {
      const stream = await storage.readBlob(hex);
      if (!stream) throw notFound("BLOB_UNKNOWN", `blob ${artifact.digest} does not exist`);
      return stream;
    },
    `${name}@${version} ${format} signature`,
  );
  const outcome = await putImmutable(storage, keys.artifactSignature(name, version, format), sig);
  if (outcome === "other") {
    throw new ApiError(
      409,
      "SIGNATURE_EXISTS",
      `the ${format} artifact of ${name}@${version} already has another signature`,
    );
  }
  return c.json({ name, version, format, signed: true }, outcome === "created" ? 201 : 200);
}
