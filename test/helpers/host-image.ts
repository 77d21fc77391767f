import { randomBytes } from "node:crypto";
import { sha256, type TemplateFixture } from "./registry.js";

/**
 * A template version as LXC and Incus hosts see it, hand-made: random tar.xz, lxc-meta.tar.xz and
 * incus-meta.tar.xz blobs, and the Incus fingerprint over them (or `fingerprint` when given).
 */
export function hostImage(
  name: string,
  version: string,
  created: string,
  extra: Record<string, unknown> = {},
  fingerprint?: string,
): TemplateFixture {
  const rootfs = randomBytes(1024);
  const lxc = randomBytes(300);
  const incus = randomBytes(400);
  const manifest = {
    schemaVersion: 1,
    name,
    version,
    distro: "debian",
    release: "13",
    arch: "x86_64",
    created,
    source: { method: "debootstrap", suite: "trixie" },
    rootfs: { tarSha256: sha256(rootfs), tarSize: rootfs.length, entries: 1 },
    artifacts: [
      { format: "tar.xz", digest: `sha256:${sha256(rootfs)}`, size: rootfs.length },
      { format: "lxc-meta.tar.xz", digest: `sha256:${sha256(lxc)}`, size: lxc.length },
      {
        format: "incus-meta.tar.xz",
        digest: `sha256:${sha256(incus)}`,
        size: incus.length,
        combinedSha256: fingerprint ?? sha256(Buffer.concat([incus, rootfs])),
      },
    ],
    ...extra,
  };
  return { name, version, blobs: [rootfs, lxc, incus], manifest: Buffer.from(JSON.stringify(manifest)) };
}
