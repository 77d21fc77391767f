import { existsSync } from "node:fs";

/** The build host's architecture in OpenVZ's spelling. */
export function hostArch(): string {
  const map: Record<string, string> = { x64: "x86_64", arm64: "aarch64" };
  return map[process.arch] ?? process.arch;
}

/**
 * Why this host cannot run programs of `arch` (null when it can): a foreign arch needs
 * qemu-user-static registered with binfmt_misc, since package scripts run inside the root.
 */
export function archProblem(arch: string): string | null {
  if (arch === hostArch()) return null;
  if (existsSync(`/proc/sys/fs/binfmt_misc/qemu-${arch}`)) return null;
  return (
    `building for ${arch} on this ${hostArch()} host needs qemu-user-static with binfmt_misc ` +
    `(apt-get install qemu-user-static binfmt-support)`
  );
}
