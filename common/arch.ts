/**
 * Architectures (docs/formats.md): the ONE table of their names. Templates use OpenVZ's
 * spelling (x86_64, aarch64); Debian, Proxmox, OCI and lxc-download's index use Debian's (amd64,
 * arm64); Incus uses the kernel's (x86_64, aarch64); Gentoo keywords and Node have their own.
 */
export interface ArchNames {
  /** Templar's and OpenVZ's name (template names, manifests, recipes). */
  template: string;
  /** dpkg, debootstrap, Proxmox file names and aplinfo.dat, lxc-download. */
  debian: string;
  /** OCI image config `architecture` (GOARCH). */
  oci: string;
  /** Incus/LXD image metadata `architecture` (the kernel's). */
  kernel: string;
  /** Gentoo keyword (portage's arch). */
  gentoo: string;
  /** Node's process.arch. */
  node: string;
  /** The machine part of a GNU triplet (CHOST). */
  triplet: string;
}

export const ARCHES: ArchNames[] = [
  {
    template: "x86_64",
    debian: "amd64",
    oci: "amd64",
    kernel: "x86_64",
    gentoo: "amd64",
    node: "x64",
    triplet: "x86_64",
  },
  {
    template: "aarch64",
    debian: "arm64",
    oci: "arm64",
    kernel: "aarch64",
    gentoo: "arm64",
    node: "arm64",
    triplet: "aarch64",
  },
  {
    template: "x86",
    debian: "i386",
    oci: "386",
    kernel: "i686",
    gentoo: "x86",
    node: "ia32",
    triplet: "i686",
  },
  {
    template: "armhf",
    debian: "armhf",
    oci: "arm",
    kernel: "armv7l",
    gentoo: "arm",
    node: "arm",
    triplet: "armv7a",
  },
  {
    template: "ppc64le",
    debian: "ppc64el",
    oci: "ppc64le",
    kernel: "ppc64le",
    gentoo: "ppc64",
    node: "ppc64",
    triplet: "powerpc64le",
  },
  {
    template: "s390x",
    debian: "s390x",
    oci: "s390x",
    kernel: "s390x",
    gentoo: "s390",
    node: "s390x",
    triplet: "s390x",
  },
  {
    template: "riscv64",
    debian: "riscv64",
    oci: "riscv64",
    kernel: "riscv64",
    gentoo: "riscv",
    node: "riscv64",
    triplet: "riscv64",
  },
];

/** The table row for an arch given in any of its spellings; null when unknown. */
export function archOf(name: string): ArchNames | null {
  return (
    ARCHES.find((a) => a.template === name) ??
    ARCHES.find((a) => a.debian === name || a.oci === name || a.kernel === name || a.triplet === name) ??
    null
  );
}

/** `name` in another spelling; unknown names pass through unchanged. */
export function archAs(name: string, as: keyof ArchNames): string {
  return archOf(name)?.[as] ?? name;
}

/** The build host's architecture, in templar's spelling. */
export function hostArch(): string {
  return ARCHES.find((a) => a.node === process.arch)?.template ?? process.arch;
}

/**
 * A manifest's architecture in templar's spelling: its `arch` field, else the one its name
 * carries (`<distro>-<release>-<arch>[-<flavour>]`, e.g. from `templar pack`), else x86_64.
 */
export function manifestArch(manifest: { name: string; arch?: string | undefined }): string {
  if (manifest.arch) return archAs(manifest.arch, "template");
  const fromName = manifest.name.split("-").find((part) => archOf(part) !== null);
  return fromName ? archAs(fromName, "template") : "x86_64";
}
