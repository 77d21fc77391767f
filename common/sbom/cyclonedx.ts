import { Enums, Models, Serialize, Spec } from "@cyclonedx/cyclonedx-library";
import type { Manifest } from "../manifest.js";
import { packagePurl } from "./purl.js";
import { uuidFromHex } from "./uuid.js";

/**
 * A template's bill of materials as CycloneDX 1.6 JSON, derived from its manifest alone: the
 * template is the root component (its tar's sha256, and each artifact as a distribution
 * reference with its digest), each installed package a component with a package URL (purl)
 * as scanners expect it, and the source inputs (bootstrap packages, upstream archives) as
 * references with their verified sha256. Built with the CycloneDX project's own library, so
 * the shape follows the specification; the tests validate it against the 1.6 JSON schema.
 */

const hex = (digest: string) => digest.replace(/^sha256:/, "");

export function cyclonedxBom(manifest: Manifest): Models.Bom {
  const bom = new Models.Bom();
  bom.serialNumber = `urn:uuid:${uuidFromHex(manifest.rootfs.tarSha256)}`;
  bom.metadata.timestamp = new Date(manifest.created);
  bom.metadata.tools.components.add(new Models.Component(Enums.ComponentType.Application, "templar"));
  const root = new Models.Component(Enums.ComponentType.OperatingSystem, manifest.name, {
    version: manifest.version,
    bomRef: `template:${manifest.name}@${manifest.version}`,
    ...(manifest.description ? { description: manifest.description } : {}),
  });
  root.hashes.set(Enums.HashAlgorithm["SHA-256"], manifest.rootfs.tarSha256);
  for (const a of manifest.artifacts) {
    const ref = new Models.ExternalReference(
      `/v1/blobs/${a.digest}`,
      Enums.ExternalReferenceType.Distribution,
      {
        comment: `${a.format}, ${a.size} bytes`,
      },
    );
    ref.hashes.set(Enums.HashAlgorithm["SHA-256"], hex(a.digest));
    root.externalReferences.add(ref);
  }
  for (const input of manifest.source?.inputs ?? []) {
    const ref = new Models.ExternalReference(input.uri, Enums.ExternalReferenceType.SourceDistribution, {
      comment: "source input",
    });
    if (input.sha256) ref.hashes.set(Enums.HashAlgorithm["SHA-256"], hex(input.sha256));
    root.externalReferences.add(ref);
  }
  for (const [k, v] of [
    ["templar:distro", manifest.distro],
    ["templar:release", manifest.release],
    ["templar:arch", manifest.arch],
    ["templar:flavour", manifest.flavour],
  ] as const)
    if (v) root.properties.add(new Models.Property(k, v));
  bom.metadata.component = root;
  for (const pkg of manifest.packages ?? []) {
    const purl = packagePurl(manifest, pkg);
    const component = new Models.Component(Enums.ComponentType.Library, pkg.name, {
      version: pkg.version,
      bomRef: purl ?? `package:${pkg.name}@${pkg.version}:${pkg.arch}`,
      ...(purl ? { purl } : {}),
    });
    bom.components.add(component);
    root.dependencies.add(component.bomRef);
  }
  return bom;
}

/** The CycloneDX 1.6 JSON text of `manifest`'s bill of materials. */
export function cyclonedxJson(manifest: Manifest): string {
  const serializer = new Serialize.JsonSerializer(new Serialize.JSON.Normalize.Factory(Spec.Spec1dot6));
  return `${serializer.serialize(cyclonedxBom(manifest), { sortLists: true, space: 2 })}\n`;
}
