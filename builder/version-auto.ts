import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { UserError } from "../common/errors.js";
import { isVersion } from "../common/names.js";
import { readFileInRoot } from "./rootfs.js";

/**
 * `version: auto`: the template's version says what is inside it. The distro's own point release
 * is read from the built root (through the rootfs helpers: a link in the root never leads out of
 * it) and mapped to the first two numbers of a semantic version; the third is a build serial,
 * the next one free for that point release where the template is kept.
 *
 *   Debian         /etc/debian_version "13.8"        -> 13.8.<n>
 *   CentOS/Fedora  os-release VERSION_ID "9", "43"   -> 9.0.<n>, 43.0.<n>  ("10.1" -> 10.1.<n>)
 *   Gentoo         stage3 timestamp 20261117T...Z    -> 2026.1117.<n>  (month*100 + day)
 *                  (os-release VERSION_ID when the artifact's name has no timestamp)
 */
export const AUTO_VERSION = "auto";

export interface DistroRelease {
  /** What the distro calls its release, as recorded in the manifest's distroRelease. */
  release: string;
  /** `<major>.<minor>`: the version without its serial. */
  prefix: string;
}

export async function distroRelease(
  distro: string,
  root: string,
  source: Record<string, unknown>,
): Promise<DistroRelease> {
  if (distro === "debian") {
    const text = await readInRoot(root, "/etc/debian_version");
    const release = text?.trim() ?? "";
    if (!/^\d+(\.\d+)*$/.test(release)) {
      throw new UserError(
        `version: auto: /etc/debian_version in the root is ${text === undefined ? "missing" : JSON.stringify(release.slice(0, 40))}, not a point release such as 13.8 (testing and unstable have none: give the version)`,
      );
    }
    return { release, prefix: numericPrefix(release) };
  }
  if (distro === "gentoo" && typeof source.artifact === "string") {
    const m = /-(\d{4})(\d{2})(\d{2})T\d{6}Z\./.exec(source.artifact);
    if (m) {
      return {
        release: `${m[1]}${m[2]}${m[3]}`,
        prefix: `${Number(m[1])}.${Number(m[2]) * 100 + Number(m[3])}`,
      };
    }
  }
  const osRelease =
    (await readInRoot(root, "/etc/os-release")) ?? (await readInRoot(root, "/usr/lib/os-release"));
  const id = osRelease === undefined ? undefined : osReleaseField(osRelease, "VERSION_ID");
  if (id === undefined || !/^\d+(\.\d+)*$/.test(id)) {
    throw new UserError(
      `version: auto: the root's os-release has ${id === undefined ? "no VERSION_ID" : `VERSION_ID ${JSON.stringify(id.slice(0, 40))}`}, not a release number: give the version`,
    );
  }
  return { release: id, prefix: numericPrefix(id) };
}

/** "13.8" -> "13.8", "9" -> "9.0", "10.1.2" -> "10.1"; leading zeros dropped (semver forbids them). */
function numericPrefix(release: string): string {
  const [major, minor = "0"] = release.split(".");
  return `${Number(major)}.${Number(minor)}`;
}

function osReleaseField(text: string, key: string): string | undefined {
  for (const line of text.split(/\r?\n/)) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m?.[1] === key) return m[2]!.replace(/^(["'])(.*)\1$/, "$2");
  }
  return undefined;
}

async function readInRoot(root: string, path: string): Promise<string | undefined> {
  try {
    return await readFileInRoot(root, path, "utf8");
  } catch {
    return undefined;
  }
}

/** `<prefix>.<n>` with n one more than the highest serial already taken (0 when none is). */
export function nextVersion(prefix: string, taken: Iterable<string>): string {
  let next = 0;
  const pattern = new RegExp(`^${prefix.replace(/\./g, "\\.")}\\.(\\d+)$`);
  for (const version of taken) {
    const m = pattern.exec(version);
    if (m) next = Math.max(next, Number(m[1]) + 1);
  }
  const version = `${prefix}.${next}`;
  if (!isVersion(version)) throw new UserError(`version: auto: ${version} is not a semantic version`);
  return version;
}

/** Versions of `name` in an output directory (its *.manifest.json files). */
export async function versionsInDir(dir: string, name: string): Promise<string[]> {
  const entries = await readdir(dir).catch(() => [] as string[]);
  const out: string[] = [];
  for (const entry of entries) {
    if (!entry.endsWith(".manifest.json")) continue;
    try {
      const data = JSON.parse(await readFile(join(dir, entry), "utf8")) as {
        name?: unknown;
        version?: unknown;
      };
      if (data.name === name && typeof data.version === "string") out.push(data.version);
    } catch {
      // Not a manifest of ours (or unreadable): it takes no version.
    }
  }
  return out;
}
