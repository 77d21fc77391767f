import { UserError } from "../../common/errors.js";
import { dpkg } from "../inventory/dpkg.js";
import { debianPreset } from "../steps/presets/debian.js";
import { apt } from "./apt.js";
import type { Family } from "./family.js";

/** The ONE table of distro families. RHEL-likes (rpm/dnf) and Gentoo (portage) plug in here. */
export const families: Family[] = [
  {
    name: "debian",
    distros: ["debian", "ubuntu", "devuan"],
    packageManager: apt,
    inventory: dpkg,
    preset: debianPreset,
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
