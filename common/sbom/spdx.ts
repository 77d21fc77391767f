import type { Manifest } from "../manifest.js";
import { packagePurl } from "./purl.js";
import { stableUuid } from "./uuid.js";

/**
 * A template's bill of materials as an SPDX 2.3 JSON document, derived from its manifest alone
 * (the same manifest gives the same bytes). No npm library writes SPDX 2.3 JSON well, so this is
 * a small typed writer; the tests validate its output against the specification's JSON schema.
 *
 * The template is the package the document describes (the tar's sha256 as its checksum); each
 * artifact is an archive it is expanded from; each source input (bootstrap archive index,
 * upstream root filesystem) something it is generated from; each installed package a package it
 * contains, with the same package URL as in the CycloneDX document (purl.ts).
 */

const NOASSERTION = "NOASSERTION";

interface SpdxChecksum {
  algorithm: "SHA256";
  checksumValue: string;
}

interface SpdxExternalRef {
  referenceCategory: "PACKAGE-MANAGER";
  referenceType: "purl";
  referenceLocator: string;
}

interface SpdxPackage {
  SPDXID: string;
  name: string;
  versionInfo?: string;
  packageFileName?: string;
  primaryPackagePurpose?: "OPERATING_SYSTEM" | "ARCHIVE" | "SOURCE";
  downloadLocation: string;
  filesAnalyzed: false;
  checksums?: SpdxChecksum[];
  licenseConcluded: string;
  licenseDeclared: string;
  copyrightText: string;
  description?: string;
  comment?: string;
  externalRefs?: SpdxExternalRef[];
}

interface SpdxRelationship {
  spdxElementId: string;
  relationshipType: "DESCRIBES" | "CONTAINS" | "EXPANDED_FROM_ARCHIVE" | "GENERATED_FROM";
  relatedSpdxElement: string;
}

export interface SpdxDocument {
  spdxVersion: "SPDX-2.3";
  dataLicense: "CC0-1.0";
  SPDXID: "SPDXRef-DOCUMENT";
  name: string;
  documentNamespace: string;
  creationInfo: { created: string; creators: string[] };
  packages: SpdxPackage[];
  relationships: SpdxRelationship[];
}

/** SPDX identifiers allow letters, digits, `.` and `-` only: others are written as `-<hex>-`. */
function idPart(text: string): string {
  return text.replace(/[^A-Za-z0-9.-]/g, (c) => `-${c.codePointAt(0)!.toString(16)}-`);
}

const hex = (digest: string) => digest.replace(/^sha256:/, "");

function bare(
  fields: Omit<SpdxPackage, "filesAnalyzed" | "licenseConcluded" | "licenseDeclared" | "copyrightText">,
): SpdxPackage {
  return {
    ...fields,
    filesAnalyzed: false,
    licenseConcluded: NOASSERTION,
    licenseDeclared: NOASSERTION,
    copyrightText: NOASSERTION,
  };
}

export function spdxDocument(manifest: Manifest): SpdxDocument {
  const root = "SPDXRef-Template";
  const packages: SpdxPackage[] = [
    bare({
      SPDXID: root,
      name: manifest.name,
      versionInfo: manifest.version,
      // The JSON schema spells it with an underscore (the specification's text with a hyphen).
      primaryPackagePurpose: "OPERATING_SYSTEM",
      downloadLocation: NOASSERTION,
      checksums: [{ algorithm: "SHA256", checksumValue: manifest.rootfs.tarSha256 }],
      ...(manifest.description ? { description: manifest.description } : {}),
      comment: `the uncompressed tar of the template's root file system; ${[
        manifest.distro,
        manifest.release,
        manifest.arch,
        manifest.flavour,
      ]
        .filter(Boolean)
        .join(" ")}`.trim(),
    }),
  ];
  const relationships: SpdxRelationship[] = [
    { spdxElementId: "SPDXRef-DOCUMENT", relationshipType: "DESCRIBES", relatedSpdxElement: root },
  ];
  const relate = (type: SpdxRelationship["relationshipType"], id: string) =>
    relationships.push({ spdxElementId: root, relationshipType: type, relatedSpdxElement: id });

  for (const a of manifest.artifacts) {
    const id = `SPDXRef-Artifact-${idPart(a.format)}`;
    packages.push(
      bare({
        SPDXID: id,
        name: `${manifest.name}-${manifest.version}.${a.format}`,
        versionInfo: manifest.version,
        packageFileName: `${manifest.name}-${manifest.version}.${a.format}`,
        primaryPackagePurpose: "ARCHIVE",
        downloadLocation: NOASSERTION,
        checksums: [{ algorithm: "SHA256", checksumValue: hex(a.digest) }],
        comment: `${a.size} bytes; a registry serves it at /v1/blobs/${a.digest}`,
      }),
    );
    relate("EXPANDED_FROM_ARCHIVE", id);
  }
  for (const [i, input] of (manifest.source?.inputs ?? []).entries()) {
    const id = `SPDXRef-Source-${i + 1}`;
    packages.push(
      bare({
        SPDXID: id,
        name: input.uri.slice(input.uri.lastIndexOf("/") + 1) || input.uri,
        primaryPackagePurpose: "SOURCE",
        downloadLocation: input.uri,
        ...(input.sha256
          ? { checksums: [{ algorithm: "SHA256" as const, checksumValue: hex(input.sha256) }] }
          : {}),
        comment: `a source input of the build (${manifest.source!.method})`,
      }),
    );
    relate("GENERATED_FROM", id);
  }
  const taken = new Set<string>();
  for (const pkg of manifest.packages ?? []) {
    let id = `SPDXRef-Package-${idPart(pkg.name)}-${idPart(pkg.arch)}`;
    for (let n = 2; taken.has(id); n++) id = `SPDXRef-Package-${idPart(pkg.name)}-${idPart(pkg.arch)}-${n}`;
    taken.add(id);
    const purl = packagePurl(manifest, pkg);
    packages.push(
      bare({
        SPDXID: id,
        name: pkg.name,
        versionInfo: pkg.version,
        downloadLocation: NOASSERTION,
        ...(purl
          ? {
              externalRefs: [
                { referenceCategory: "PACKAGE-MANAGER", referenceType: "purl", referenceLocator: purl },
              ],
            }
          : {}),
      }),
    );
    relate("CONTAINS", id);
  }
  return {
    spdxVersion: "SPDX-2.3",
    dataLicense: "CC0-1.0",
    SPDXID: "SPDXRef-DOCUMENT",
    name: `${manifest.name}-${manifest.version}`,
    // Unique per template content, and the same every time it is derived.
    documentNamespace: `urn:uuid:${stableUuid(`spdx:${manifest.name}@${manifest.version}:${manifest.rootfs.tarSha256}`)}`,
    // SPDX wants seconds, without a fraction.
    creationInfo: {
      created: new Date(manifest.created).toISOString().replace(/\.\d{3}Z$/, "Z"),
      creators: ["Tool: templar"],
    },
    packages,
    relationships,
  };
}

/** The SPDX 2.3 JSON text of `manifest`'s bill of materials. */
export function spdxJson(manifest: Manifest): string {
  return `${JSON.stringify(spdxDocument(manifest), null, 2)}\n`;
}
