import { sha256Hex } from "../../common/digest.js";
import { CodedError } from "../../common/error-codes.js";
import { MAX_MANIFEST_BYTES, type Manifest, parseManifest } from "../../common/manifest.js";
import { armouredSignatureProblem } from "../../common/signing/signatures.js";
import { readLimited } from "../http/body.js";
import { assertRefSafe, type Ctx, deps, nameParam, need, versionParam } from "../http/context.js";
import { checkBlobs } from "../store/publish.js";
import { enforceManifestPolicy } from "../trust.js";
import { etagMatches } from "./blobs.js";

export const MAX_SIGNATURE_BYTES = 64 * 1024;

/** GET /v1/templates/{name}/{ref}: the manifest bytes for a version, tag or URL-encoded range. */
export async function getManifest(c: Ctx): Promise<Response> {
  const name = nameParam(c);
  need(c, "pull", name);
  const ref = assertRefSafe(c.req.param("ref") ?? "");
  const { store, metrics } = deps(c);
  const resolved = await store.versions.resolve(name, ref);
  const etag = `"sha256:${sha256Hex(resolved.manifest)}"`;
  c.header("ETag", etag);
  c.header("X-Template-Version", resolved.version);
  c.header("Content-Type", "application/json");
  // A version's manifest never changes; what a tag or range points to does.
  c.header("Cache-Control", resolved.kind === "version" ? "public, max-age=31536000, immutable" : "no-cache");
  if (etagMatches(c.req.header("if-none-match"), etag)) return c.body(null, 304);
  c.header("Content-Length", String(resolved.manifest.length));
  if (c.req.method === "HEAD") return c.body(null, 200);
  metrics.bytesServed += resolved.manifest.length;
  return c.body(new Uint8Array(resolved.manifest), 200);
}

/**
 * PUT /v1/templates/{name}/{version}: the manifest bytes as the body (at most 1 MiB), optionally
 * its detached signature as `X-Template-Signature: <base64 of the armoured signature>`.
 * 201 created, 200 when the identical manifest is already there, 409 when other bytes are.
 */
export async function putManifest(c: Ctx): Promise<Response> {
  const name = nameParam(c);
  const version = versionParam(c);
  need(c, "push", name);
  const { store, metrics } = deps(c);
  const signature = await signatureHeader(c);
  const bytes = await readLimited(c, MAX_MANIFEST_BYTES, "manifest");
  let manifest: Manifest;
  try {
    manifest = parseManifest(bytes, "manifest");
  } catch (err) {
    throw new CodedError("MANIFEST_INVALID", (err as Error).message);
  }
  if (manifest.name !== name) {
    throw new CodedError("MANIFEST_INVALID", `manifest names template ${manifest.name}, the URL ${name}`);
  }
  if (manifest.version !== version) {
    throw new CodedError("MANIFEST_INVALID", `manifest has version ${manifest.version}, the URL ${version}`);
  }
  // Early, so a manifest naming a missing blob is told so before any policy error; the check
  // that counts is the store's, made after its pin (store/gc.ts).
  await checkBlobs(store.blobs, manifest);
  await enforceManifestPolicy(c, bytes, signature);

  const digest = `sha256:${sha256Hex(bytes)}`;
  c.header("ETag", `"${digest}"`);
  c.header("Location", `/v1/templates/${name}/${version}`);
  // Pin, GC check, blob check, create-if-absent: an identical PUT ("same") is acknowledged only
  // after the same checks, and no request ever takes a manifest back.
  const outcome = await store.publish(manifest, bytes);
  if (outcome === "created") {
    metrics.pushes++;
    deps(c).deltas?.schedule(name, version);
  }
  if (signature) await store.putSignature(name, version, signature);
  return outcome === "created"
    ? c.json({ name, version, digest, created: true }, 201)
    : c.json({ name, version, digest, created: false }, 200);
}

/** GET /v1/templates/{name}/{version}/signature: the manifest's detached signature. */
export async function getSignature(c: Ctx): Promise<Response> {
  const name = nameParam(c);
  const version = versionParam(c);
  need(c, "pull", name);
  const sig = await deps(c).store.manifests.signature(name, version);
  if (!sig) throw new CodedError("SIGNATURE_UNKNOWN", `${name}@${version} is not signed (or does not exist)`);
  c.header("Content-Type", "application/pgp-signature");
  return c.body(new Uint8Array(sig), 200);
}

/** PUT /v1/templates/{name}/{version}/signature: adds the signature to a version pushed unsigned. */
export async function putSignature(c: Ctx): Promise<Response> {
  const name = nameParam(c);
  const version = versionParam(c);
  need(c, "push", name);
  const { store } = deps(c);
  const sig = await readLimited(c, MAX_SIGNATURE_BYTES, "signature");
  await checkArmour(sig);
  const manifest = await store.manifests.bytes(name, version);
  if (!manifest) throw new CodedError("VERSION_UNKNOWN", `${name}@${version} does not exist`);
  await enforceManifestPolicy(c, manifest, sig);
  const created = await store.putSignature(name, version, sig);
  return c.json({ name, version, signed: true }, created ? 201 : 200);
}

async function signatureHeader(c: Ctx): Promise<Buffer | null> {
  const header = c.req.header("x-template-signature");
  if (header === undefined) return null;
  const sig = Buffer.from(header, "base64");
  if (sig.length > MAX_SIGNATURE_BYTES) throw new CodedError("TOO_LARGE", "signature is larger than 64 KiB");
  await checkArmour(sig);
  return sig;
}

/**
 * Every signature is parsed at push, policy or not: hosts verify what they fetch, and a stored
 * signature can never be replaced (create-if-absent), so garbage accepted once would stay.
 */
export async function checkArmour(sig: Buffer): Promise<void> {
  const problem = await armouredSignatureProblem(sig);
  if (problem) {
    throw new CodedError(
      "SIGNATURE_INVALID",
      `signature must be an ASCII-armoured OpenPGP detached signature (${problem})`,
    );
  }
}

/** DELETE /v1/templates/{name}/{version}: the version, its signatures and tags pointing at it. */
export async function deleteVersion(c: Ctx): Promise<Response> {
  const name = nameParam(c);
  const version = versionParam(c);
  need(c, "delete", name);
  await deps(c).store.deleteVersion(name, version);
  return c.body(null, 204);
}
