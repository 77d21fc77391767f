import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { archAs, manifestArch } from "../../common/arch.js";
import { UserError } from "../../common/errors.js";
import type { HostMetaFormat } from "../../common/formats.js";
import { type HostIdentity, hostIdentity } from "../../common/host-identity.js";
import type { Manifest } from "../../common/manifest.js";
import { BLOCK, END_OF_ARCHIVE, encodeHeader, paddingFor } from "./tar-header.js";

/**
 * The metadata tarballs LXC's lxc-download and Incus/LXD need beside `rootfs.tar.xz`
 * (README "LXC" and "Incus and LXD"). Their bytes follow from the manifest's fields
 * alone: entries sorted by name, owner 0:0, every mtime the manifest's `created`, fixed modes,
 * and one xz setting (single-threaded, so the block layout never depends on the machine). A
 * rebuild with the same fields therefore gives the same files, and the same Incus fingerprint.
 */

/** How long lxc-download keeps using its cached copy before it asks the index again. */
const LXC_CACHE_DAYS = 30;

/** The manifest's `created` in whole seconds: every mtime and date in the tarballs. */
function epochOf(manifest: Manifest): number {
  return Math.floor(Date.parse(manifest.created) / 1000);
}

/**
 * LXC config lines per distro family. Debian 12's lxc ships only common.conf, userns.conf and
 * nesting.conf under LXC_TEMPLATE_CONFIG, so a family may add plain keys but never include a
 * distro-specific file (lxc-create fails on a missing include).
 */
const FAMILY_LXC_LINES: Record<string, readonly string[]> = {
  // OpenRC and sysvinit stop on SIGPWR's default; systemd wants SIGRTMIN+3 to halt cleanly.
  alpine: ["lxc.signal.halt = SIGUSR1"],
  gentoo: [],
};
const SYSTEMD_LXC_LINES = ["lxc.signal.halt = SIGRTMIN+3"];

export function lxcConfig(manifest: Manifest, mode: "system" | "user"): string {
  const family = FAMILY_LXC_LINES[identityOf(manifest).distro] ?? SYSTEMD_LXC_LINES;
  const lines = [
    "lxc.include = LXC_TEMPLATE_CONFIG/common.conf",
    ...(mode === "user" ? ["lxc.include = LXC_TEMPLATE_CONFIG/userns.conf"] : []),
    `lxc.arch = ${archAs(manifestArch(manifest), "kernel")}`,
    ...family,
  ];
  return `${lines.join("\n")}\n`;
}

function title(manifest: Manifest): string {
  return (manifest.description ?? `${manifest.name} ${manifest.version}`).replace(/[\r\n]+/g, " ");
}

/** The files of LXC's meta.tar.xz (lxc-download: config required, the rest optional). */
export function lxcMetaFiles(manifest: Manifest): Map<string, string> {
  return new Map([
    ["config", lxcConfig(manifest, "system")],
    ["config-user", lxcConfig(manifest, "user")],
    [
      "create-message",
      `You just created a ${title(manifest)} container (templar ${manifest.name} ${manifest.version}).\n`,
    ],
    ["expiry", `${epochOf(manifest) + LXC_CACHE_DAYS * 86400}\n`],
    // lxc-download replaces LXC_NAME in these files of the new root filesystem.
    ["templates", "/etc/hostname\n/etc/hosts\n"],
  ]);
}

/** Distro, release and variant as both clients name them; a template without them cannot be served. */
function identityOf(manifest: Manifest): HostIdentity {
  const id = hostIdentity(manifest);
  if (!id) {
    throw new UserError(
      `${manifest.name}: LXC and Incus images need a distro and release: name the template <distro>-<release>-<arch>[-<flavour>] (or build it from a recipe)`,
    );
  }
  return id;
}

/** A YAML scalar: JSON strings are valid YAML and need no further quoting rules. */
function y(value: string): string {
  return JSON.stringify(value);
}

/** The files of the Incus/LXD metadata tarball: metadata.yaml and its templates. */
export function incusMetaFiles(manifest: Manifest): Map<string, string> {
  const { arch, distro, release, variant } = identityOf(manifest);
  const yaml = [
    `architecture: ${y(archAs(arch, "kernel"))}`,
    `creation_date: ${epochOf(manifest)}`,
    "properties:",
    `  architecture: ${y(archAs(arch, "debian"))}`,
    `  description: ${y(title(manifest))}`,
    `  name: ${y(manifest.name)}`,
    `  os: ${y(distro)}`,
    `  release: ${y(release)}`,
    `  variant: ${y(variant)}`,
    `  version: ${y(manifest.version)}`,
    "templates:",
    "  /etc/hostname:",
    "    when: [create, copy]",
    "    template: hostname.tpl",
    "  /etc/hosts:",
    "    when: [create, copy]",
    "    template: hosts.tpl",
  ];
  return new Map([
    ["metadata.yaml", `${yaml.join("\n")}\n`],
    ["templates/hostname.tpl", "{{ instance.name }}\n"],
    [
      "templates/hosts.tpl",
      "127.0.0.1   localhost\n127.0.1.1   {{ instance.name }}\n\n::1     localhost ip6-localhost ip6-loopback\nff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n",
    ],
  ]);
}

/** A deterministic tar of `files` (directories implied by the paths), sorted, owner 0:0. */
export function metaTar(files: Map<string, string>, mtime: number): Buffer {
  const dirs = new Set<string>();
  for (const path of files.keys()) {
    const parts = path.split("/");
    for (let i = 1; i < parts.length; i++) dirs.add(`${parts.slice(0, i).join("/")}/`);
  }
  const names = [...dirs, ...files.keys()].sort();
  const chunks: Buffer[] = [];
  for (const name of names) {
    const isDir = name.endsWith("/");
    const data = isDir ? Buffer.alloc(0) : Buffer.from(files.get(name)!, "utf8");
    chunks.push(
      encodeHeader({
        path: Buffer.from(name, "utf8"),
        type: isDir ? "directory" : "file",
        mode: isDir ? 0o755 : 0o644,
        uid: 0,
        gid: 0,
        size: data.length,
        mtime,
      }),
      data,
      Buffer.alloc(paddingFor(data.length)),
    );
  }
  chunks.push(END_OF_ARCHIVE);
  const tar = Buffer.concat(chunks);
  if (tar.length % BLOCK !== 0) throw new Error("metadata tar is not block-aligned");
  return tar;
}

/** xz with one fixed setting: the same input gives the same bytes on every machine. */
export function xzFixed(data: Buffer): Buffer {
  const run = spawnSync("xz", ["--format=xz", "--check=crc64", "-6", "-T1", "-q", "-c"], {
    input: data,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (run.error || run.status !== 0) {
    throw new UserError(
      `xz failed making a host metadata tarball (${run.error?.message ?? run.stderr.toString().trim()}); install xz-utils`,
    );
  }
  return run.stdout;
}

/** The bytes of one host metadata tarball for `manifest`. */
export function hostMetaBytes(manifest: Manifest, format: HostMetaFormat): Buffer {
  const files = format === "lxc-meta.tar.xz" ? lxcMetaFiles(manifest) : incusMetaFiles(manifest);
  return xzFixed(metaTar(files, epochOf(manifest)));
}

/** sha256(metadata ‖ rootfs.tar.xz): the image fingerprint Incus and LXD compute. */
export async function combinedSha256(meta: Buffer, rootfsXzPath: string): Promise<string> {
  const hash = createHash("sha256").update(meta);
  for await (const chunk of createReadStream(rootfsXzPath)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}
