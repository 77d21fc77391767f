// Only `valid`: importing all of semver costs ~50 ms of start-up (templar pack is benchmarked).
import validSemver from "semver/functions/valid.js";
import { UserError } from "./errors.js";

/** DESIGN.md "Template identity": lower case, starts with [a-z0-9], at most 128 characters. */
const TEMPLATE_NAME = /^[a-z0-9][a-z0-9._-]*$/;
const TAG_NAME = /^[a-z][a-z0-9._-]*$/;
export const MAX_NAME_LENGTH = 128;

/** Returns why `name` is not a valid template name, or null when it is. */
export function templateNameProblem(name: string): string | null {
  if (name.length === 0) return "is empty";
  if (name.length > MAX_NAME_LENGTH) return `is longer than ${MAX_NAME_LENGTH} characters`;
  if (!TEMPLATE_NAME.test(name)) return "must match [a-z0-9][a-z0-9._-]* (lower case, no '/' or spaces)";
  if (name.includes("..")) return "must not contain '..'";
  return null;
}

export function assertTemplateName(name: string, what = "template name"): string {
  const problem = templateNameProblem(name);
  if (problem) throw new UserError(`${what} ${JSON.stringify(name)} ${problem}`);
  return name;
}

/** Strict semver 2.0 (no leading "v", no loose parsing). */
export function isVersion(version: string): boolean {
  return validSemver(version, { loose: false }) === version;
}

export function assertVersion(version: string, what = "version"): string {
  if (!isVersion(version)) {
    throw new UserError(
      `${what} ${JSON.stringify(version)} is not a semantic version such as 1.2.3 or 1.2.0-rc.1`,
    );
  }
  return version;
}

export function isTag(tag: string): boolean {
  return tag.length <= MAX_NAME_LENGTH && TAG_NAME.test(tag) && !tag.includes("..");
}

/** Maps a distro architecture name to OpenVZ's convention (x86_64, aarch64). */
export function templateArch(arch: string): string {
  const map: Record<string, string> = {
    amd64: "x86_64",
    arm64: "aarch64",
    x86_64: "x86_64",
    aarch64: "aarch64",
  };
  return map[arch] ?? arch;
}

/** Maps OpenVZ's arch names to Debian's (what dpkg, debootstrap and Proxmox use). */
export function debianArch(arch: string): string {
  const map: Record<string, string> = { x86_64: "amd64", aarch64: "arm64" };
  return map[arch] ?? arch;
}
