import { UserError } from "../../common/errors.js";
import { dpkg } from "../inventory/dpkg.js";
import { portageDb } from "../inventory/portage.js";
import { rpm } from "../inventory/rpm.js";
import { apt } from "./apt.js";
import { dnf } from "./dnf.js";
import type { Family } from "./family.js";
import { portage } from "./portage.js";
import { debianPreset } from "./presets/debian.js";
import { gentooPreset } from "./presets/gentoo.js";
import { rhelPreset } from "./presets/rhel.js";

/** The ONE table of distro families. RHEL-likes (rpm/dnf) and Gentoo (portage) plug in here. */
export const families: Family[] = [
  {
    name: "debian",
    distros: ["debian", "ubuntu", "devuan"],
    packageManager: apt,
    inventory: dpkg,
    preset: debianPreset,
  },
  {
    name: "rhel",
    distros: ["centos", "fedora", "almalinux", "rocky"],
    packageManager: dnf,
    inventory: rpm,
    preset: rhelPreset,
  },
  {
    name: "gentoo",
    distros: ["gentoo"],
    packageManager: portage,
    inventory: portageDb,
    preset: gentooPreset,
  },
];

export function familyOf(distro: string): Family {
  const family = families.find((f) => f.distros.includes(distro));
  if (!family) {
    const known = families.flatMap((f) => f.distros).join(", ");
    throw new UserError(`distro ${JSON.stringify(distro)} has no builder support (known: ${known})`);
  }
  return family;
}
