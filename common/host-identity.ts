import { archOf, manifestArch } from "./arch.js";
import type { Manifest } from "./manifest.js";
import { namePartProblem } from "./names.js";

/**
 * A template as LXC and Incus hosts name images: distribution, release, architecture and
 * variant (the flavour, `default` when none). Taken from the manifest's fields, else from a
 * name following `<distro>-<release>-<arch>[-<flavour>]` (what `templar pack` names); null when
 * no release can be told, since both clients need one.
 */
export interface HostIdentity {
  distro: string;
  release: string;
  /** Templar's spelling (x86_64); each client's spelling comes from common/arch.ts. */
  arch: string;
  variant: string;
  /** The release's code name (`trixie`), when the build's source names one. */
  codename: string | null;
}

const SUITE_ALIASES = new Set(["stable", "testing", "unstable", "oldstable", "sid", "experimental"]);

export function hostIdentity(
  manifest: Pick<Manifest, "name" | "distro" | "release" | "arch" | "flavour" | "source">,
): HostIdentity | null {
  const parts = manifest.name.split("-");
  const distro = manifest.distro ?? parts[0]!;
  const release =
    manifest.release ?? (manifest.distro === undefined && /^\d/.test(parts[1] ?? "") ? parts[1]! : undefined);
  if (!release) return null;
  const arch = manifestArch(manifest);
  let flavour = manifest.flavour;
  if (flavour === undefined && manifest.distro === undefined && archOf(parts[2] ?? "") !== null) {
    flavour = parts.slice(3).join("-") || undefined;
  }
  const suite = (manifest.source as { suite?: unknown } | undefined)?.suite;
  const codename =
    typeof suite === "string" &&
    /^[a-z][a-z0-9]*$/.test(suite) &&
    suite !== release &&
    !SUITE_ALIASES.has(suite)
      ? suite
      : null;
  const variant = flavour ?? "default";
  for (const word of [distro, release, variant]) if (namePartProblem(word) !== null) return null;
  return { distro, release, arch, variant, codename };
}
