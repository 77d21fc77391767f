import { UserError } from "../../../common/errors.js";
import { familyOf } from "../../family/index.js";
import type { OsRelease } from "../root.js";
import { debianFamily } from "./debian.js";
import type { TestFamily } from "./family.js";
import { gentooFamily } from "./gentoo.js";
import { rhelFamily } from "./rhel.js";

/** The ONE table of distro families the boot test knows how to configure a network for. */
export const testFamilies: TestFamily[] = [debianFamily, rhelFamily, gentooFamily];

/**
 * The family of a template: from its manifest's `distro` when there is one (the builder's
 * family table decides), else from the root's os-release ID, then ID_LIKE.
 */
export function testFamilyFor(distro: string | undefined, os: OsRelease): TestFamily {
  if (distro) {
    const name = familyOf(distro).name;
    const family = testFamilies.find((f) => f.name === name);
    if (family) return family;
  }
  const ids = [os.ID, ...(os.ID_LIKE ?? "").split(/\s+/)].filter((id): id is string => Boolean(id));
  for (const id of ids) {
    const family = testFamilies.find((f) => f.ids.includes(id));
    if (family) return family;
  }
  throw new UserError(
    `cannot tell how a host would configure its network: unknown distro (os-release ID=${os.ID ?? "none"})`,
  );
}
