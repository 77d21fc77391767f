import { CodedError } from "../../common/error-codes.js";
import { ARTIFACT_FORMATS, type ArtifactFormat } from "../../common/formats.js";
import { type Manifest, parseManifest } from "../../common/manifest.js";
import type { StorageDriver } from "../storage/driver.js";
import { layout } from "./layout.js";

/**
 * Writes an immutable object (a manifest, a signature) once: "created" when this call wrote it,
 * "same" when the key already held these exact bytes (a repeated push or mirror run), "other"
 * when it holds different bytes, which are left as they are. An object that vanished between
 * the create and the read (a DELETE meanwhile) is created again, never reported as "other".
 */
export async function putImmutable(
  driver: StorageDriver,
  key: string,
  data: Buffer,
): Promise<"created" | "same" | "other"> {
  for (let attempt = 0; ; attempt++) {
    if (await driver.putIfAbsent(key, data)) return "created";
    const held = await driver.get(key);
    if (held) return held.equals(data) ? "same" : "other";
    if (attempt >= 5) throw new Error(`storage key ${key} keeps vanishing between create and read`);
  }
}

/**
 * Manifests and their signatures as stored: read, parsed (immutable, so parsed ones are kept),
 * signatures added create-if-absent, and whole versions deleted. Publishing a manifest goes
 * through publish.ts, which knows what GC needs.
 */
export class Manifests {
  private parsed = new Map<string, Manifest>();

  constructor(private readonly driver: StorageDriver) {}

  bytes(name: string, version: string): Promise<Buffer | null> {
    return this.driver.get(layout.manifest(name, version));
  }

  async exists(name: string, version: string): Promise<boolean> {
    return (await this.driver.stat(layout.manifest(name, version))) !== null;
  }

  /** The parsed manifest of a version, or null when it does not exist. */
  async manifest(name: string, version: string): Promise<Manifest | null> {
    const bytes = await this.bytes(name, version);
    if (!bytes) return null;
    // Keyed by size too: a version deleted and pushed again is read anew.
    const id = `${name}@${version}\u0000${bytes.length}`;
    let manifest = this.parsed.get(id);
    if (!manifest) {
      manifest = parseManifest(bytes, `${name}@${version}`);
      if (this.parsed.size > 20_000) this.parsed.clear();
      this.parsed.set(id, manifest);
    }
    return manifest;
  }

  signature(name: string, version: string): Promise<Buffer | null> {
    return this.driver.get(layout.signature(name, version));
  }

  artifactSignature(name: string, version: string, format: ArtifactFormat): Promise<Buffer | null> {
    return this.driver.get(layout.artifactSignature(name, version, format));
  }

  /** Signatures are create-if-absent: a version's signature cannot be swapped afterwards. */
  async putSignature(name: string, version: string, signature: Buffer): Promise<boolean> {
    const outcome = await putImmutable(this.driver, layout.signature(name, version), signature);
    if (outcome === "other")
      throw new CodedError("SIGNATURE_EXISTS", `${name}@${version} already has another signature`);
    return outcome === "created";
  }

  async putArtifactSignature(
    name: string,
    version: string,
    format: ArtifactFormat,
    signature: Buffer,
  ): Promise<boolean> {
    const outcome = await putImmutable(
      this.driver,
      layout.artifactSignature(name, version, format),
      signature,
    );
    if (outcome === "other") {
      throw new CodedError(
        "SIGNATURE_EXISTS",
        `the ${format} artifact of ${name}@${version} already has another signature`,
      );
    }
    return outcome === "created";
  }

  /** Removes a version's signatures, then its manifest (its blobs go at the next GC). */
  async delete(name: string, version: string): Promise<void> {
    await this.driver.delete(layout.signature(name, version));
    for (const format of ARTIFACT_FORMATS)
      await this.driver.delete(layout.artifactSignature(name, version, format));
    await this.driver.delete(layout.manifest(name, version));
  }
}
