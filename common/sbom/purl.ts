import { PackageURL } from "packageurl-js";
import type { Manifest, PackageEntry } from "../manifest.js";

/**
 * Package URLs (purls) of a template's installed packages, as vulnerability scanners read them:
 * the one place both SBOM formats (cyclonedx.ts, spdx.ts) take them from.
 */

/** Which package ecosystem a distro's packages belong to (purl type), and its namespace. */
export function purlFamily(distro: string | undefined): { type: string; namespace: string } | null {
  const d = (distro ?? "").toLowerCase();
  if (["debian", "ubuntu", "devuan"].includes(d)) return { type: "deb", namespace: d };
  if (["centos", "fedora", "rhel", "almalinux", "rocky", "opensuse"].includes(d))
    return { type: "rpm", namespace: d };
  // Gentoo: what syft writes, pkg:ebuild/<category>/<name>@<version>.
  if (d === "gentoo") return { type: "ebuild", namespace: "" };
  return null;
}

/** The purl of one installed package of `manifest`, or undefined for an unknown ecosystem. */
export function packagePurl(manifest: Manifest, pkg: PackageEntry): string | undefined {
  const family = purlFamily(manifest.distro);
  if (!family) return undefined;
  if (family.type === "ebuild") {
    const slash = pkg.name.indexOf("/");
    const category = slash > 0 ? pkg.name.slice(0, slash) : undefined;
    const name = slash > 0 ? pkg.name.slice(slash + 1) : pkg.name;
    return new PackageURL("ebuild", category, name, pkg.version, undefined, undefined).toString();
  }
  const qualifiers: Record<string, string> = { arch: pkg.arch };
  if (manifest.distro && manifest.release) qualifiers.distro = `${manifest.distro}-${manifest.release}`;
  return new PackageURL(
    family.type,
    family.namespace,
    pkg.name,
    pkg.version,
    qualifiers,
    undefined,
  ).toString();
}
