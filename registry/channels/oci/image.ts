import { archOf, manifestArch } from "../../../common/arch.js";
import { sha256Hex } from "../../../common/digest.js";
import type { Format } from "../../../common/formats.js";
import type { Artifact, Manifest } from "../../../common/manifest.js";

/**
 * A template version as an OCI image (README "Proxmox VE 9 and other OCI clients"), derived
 * from its templar manifest alone, so every replica serves byte-identical documents and nothing
 * new is stored:
 *
 *   image index   one entry per compressed artifact (tar.gz first: Proxmox's extractor reads gzip)
 *   └ image manifest   config + one layer: the artifact blob itself
 *     └ image config   os linux, OCI architecture, rootfs.diff_ids = [sha256:<rootfs.tarSha256>],
 *                      Entrypoint ["/sbin/init"] (a system container for pct, podman --systemd)
 *
 * The JSON is written with a fixed key order and no whitespace; changing any byte here changes
 * every digest a client has pinned, so this file is the contract.
 */
export const MEDIA = {
  index: "application/vnd.oci.image.index.v1+json",
  manifest: "application/vnd.oci.image.manifest.v1+json",
  config: "application/vnd.oci.image.config.v1+json",
  gzipLayer: "application/vnd.oci.image.layer.v1.tar+gzip",
  zstdLayer: "application/vnd.oci.image.layer.v1.tar+zstd",
} as const;

/** Layer media type per artifact format, in the order the index lists them (xz has none in OCI). */
export const LAYER_FORMATS: readonly { format: Format; mediaType: string }[] = [
  { format: "tar.gz", mediaType: MEDIA.gzipLayer },
  { format: "tar.zst", mediaType: MEDIA.zstdLayer },
];

export interface OciDocument {
  mediaType: string;
  /** sha256 hex of `bytes`. */
  hex: string;
  bytes: Buffer;
}

export interface OciImage {
  index: OciDocument;
  /** One per layer format the version has, gzip first. */
  manifests: { format: Format; manifest: OciDocument; layer: Artifact }[];
  config: OciDocument;
}

function doc(mediaType: string, value: unknown): OciDocument {
  const bytes = Buffer.from(JSON.stringify(value), "utf8");
  return { mediaType, hex: sha256Hex(bytes), bytes };
}

function descriptor(d: OciDocument) {
  return { mediaType: d.mediaType, digest: `sha256:${d.hex}`, size: d.bytes.length };
}

/** The platform of a template: OCI's architecture names (GOARCH), plus the ARM variant. */
export function platformOf(manifest: Manifest): { architecture: string; os: "linux"; variant?: string } {
  const arch = manifestArch(manifest);
  const oci = archOf(arch)?.oci ?? arch;
  return oci === "arm"
    ? { architecture: oci, os: "linux", variant: "v7" }
    : { architecture: oci, os: "linux" };
}

/**
 * Derives the image; null when the version has no artifact an OCI client can read (xz only).
 * `manifestHex` is the sha256 of the stored templar manifest bytes (a label, so the image says
 * which signed manifest it stands for).
 */
export function deriveImage(manifest: Manifest, manifestHex: string): OciImage | null {
  const layers = LAYER_FORMATS.flatMap(({ format, mediaType }) => {
    const artifact = manifest.artifacts.find((a) => a.format === format);
    return artifact ? [{ format, mediaType, artifact }] : [];
  });
  if (layers.length === 0) return null;
  const platform = platformOf(manifest);
  const labels = {
    "org.opencontainers.image.title": manifest.name,
    "org.opencontainers.image.version": manifest.version,
    "org.opencontainers.image.created": manifest.created,
    ...(manifest.description ? { "org.opencontainers.image.description": manifest.description } : {}),
    "org.templar.manifest.digest": `sha256:${manifestHex}`,
  };
  const config = doc(MEDIA.config, {
    created: manifest.created,
    architecture: platform.architecture,
    ...(platform.variant ? { variant: platform.variant } : {}),
    os: "linux",
    config: { Entrypoint: ["/sbin/init"], Labels: labels },
    rootfs: { type: "layers", diff_ids: [`sha256:${manifest.rootfs.tarSha256}`] },
    history: [
      { created: manifest.created, created_by: `templar template ${manifest.name}@${manifest.version}` },
    ],
  });
  const manifests = layers.map(({ format, mediaType, artifact }) => ({
    format,
    layer: artifact,
    manifest: doc(MEDIA.manifest, {
      schemaVersion: 2,
      mediaType: MEDIA.manifest,
      config: descriptor(config),
      layers: [{ mediaType, digest: artifact.digest, size: artifact.size }],
      annotations: labels,
    }),
  }));
  const index = doc(MEDIA.index, {
    schemaVersion: 2,
    mediaType: MEDIA.index,
    manifests: manifests.map(({ manifest: m, format }) => ({
      ...descriptor(m),
      platform,
      annotations: { "org.templar.format": format },
    })),
    annotations: labels,
  });
  return { index, manifests, config };
}
