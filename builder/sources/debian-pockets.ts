import { UserError } from "../../common/errors.js";
import { hostDebianSecurityMirror } from "./apt-sources.js";

/**
 * Debian's update pockets: `<suite>-updates` (point-release and urgent fixes, on the main
 * archive) and `<suite>-security` (security fixes, in the security archive). A template built
 * from the suite alone ships every vulnerability fixed since the last point release, so recipes
 * get both unless they say otherwise; unstable and experimental have neither.
 */
export const POCKETS = ["updates", "security"] as const;
export type Pocket = (typeof POCKETS)[number];

const WITHOUT_POCKETS = new Set(["sid", "unstable", "experimental", "rc-buggy"]);

/** The pockets a recipe gets when its source does not list them. */
export function defaultPockets(suite: string): Pocket[] {
  return WITHOUT_POCKETS.has(suite) ? [] : [...POCKETS];
}

/** One apt source of the build: the archive's base URL and the suite (dists/<suite>/). */
export interface DebianSuiteSource {
  mirror: string;
  suite: string;
}

/**
 * Where the security archive is: the one configured (TEMPLAR_DEBIAN_SECURITY_MIRROR), else the build host's apt
 * sources (its `-security` entry), else the main mirror's sibling when the main mirror ends in
 * /debian (the layout of Debian's own mirror network: .../debian and .../debian-security).
 */
export function securityMirror(
  mainMirror: string,
  aptDir: string,
  where: string,
  configured?: string,
): string {
  const found = configured || hostDebianSecurityMirror(aptDir) || siblingOf(mainMirror);
  if (!found) {
    throw new UserError(
      `${where}: source: no Debian security mirror found for the security pocket: set ` +
        "TEMPLAR_DEBIAN_SECURITY_MIRROR, add a <suite>-security source to the host's apt sources, " +
        "or list the pockets wanted (pockets: [updates], or [] for none)",
    );
  }
  if (!/^(https?|file):\/\//.test(found)) {
    throw new UserError(
      `${where}: source: security mirror ${JSON.stringify(found)} is not an http(s):// or file:// URL`,
    );
  }
  return found.replace(/\/+$/, "");
}

function siblingOf(mainMirror: string): string | undefined {
  const main = mainMirror.replace(/\/+$/, "");
  return /\/debian$/.test(main) ? `${main}-security` : undefined;
}

/** The suite first, then each pocket: what apt installs from (newest version wins). */
export function suiteSources(
  mirror: string,
  suite: string,
  pockets: Pocket[],
  security: () => string,
): DebianSuiteSource[] {
  const sources = [{ mirror, suite }];
  if (pockets.includes("updates")) sources.push({ mirror, suite: `${suite}-updates` });
  if (pockets.includes("security")) sources.push({ mirror: security(), suite: `${suite}-security` });
  return sources;
}

/**
 * `deb <mirror> <suite> <components>` lines, as mmdebstrap takes them after the target; with
 * `signedBy`, apt trusts only that keyring for them (`deb [signed-by=<file>] ...`).
 */
export function sourceLines(sources: DebianSuiteSource[], components: string[], signedBy?: string): string[] {
  const options = signedBy ? `[signed-by=${signedBy}] ` : "";
  return sources.map((s) => `deb ${options}${s.mirror} ${s.suite} ${components.join(" ")}`);
}

/**
 * The Release file apt kept for `source` among `files` (apt names them
 * `<host>_<path>_dists_<suite>_InRelease`), with the URI it came from.
 */
export function releaseFileOf(
  source: DebianSuiteSource,
  files: string[],
): { file: string; uri: string } | undefined {
  for (const name of ["InRelease", "Release"]) {
    const file = files.find((f) => f.endsWith(`_dists_${source.suite}_${name}`));
    if (file) return { file, uri: `${source.mirror}/dists/${source.suite}/${name}` };
  }
  return undefined;
}
