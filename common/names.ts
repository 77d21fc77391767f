// Only `valid`: importing all of semver costs ~50 ms of start-up (templar pack is benchmarked).
import validSemver from "semver/functions/valid.js";
import { UserError } from "./errors.js";

/** Template names (docs/formats.md): lower case, starts with [a-z0-9], at most 128 characters. */
const TEMPLATE_NAME = /^[a-z0-9][a-z0-9._-]*$/;
const TAG_NAME = /^[a-z][a-z0-9._-]*$/;
export const MAX_NAME_LENGTH = 128;
/**
 * Versions, arches and the other manifest fields end up in file names on hosts (Proxmox's
 * `<name>_<version>_<arch>.tar.zst`): these bounds keep such a name under NAME_MAX (255 bytes).
 */
export const MAX_VERSION_LENGTH = 64;
const MAX_PART_LENGTH = 64;
const MAX_ARCH_LENGTH = 32;
/** distro, release, flavour: what a template name is built from (`<distro>-<release>-<arch>-...`). */
const NAME_PART = /^[a-z0-9][a-z0-9._-]*$/;
/** x86_64, aarch64, amd64, arm64, ppc64le, riscv64: architecture names have no '.' or '-'. */
const ARCH = /^[a-z0-9][a-z0-9_]*$/;

/** Returns why `name` is not a valid template name, or null when it is. */
export function templateNameProblem(name: string): string | null {
  if (name.length === 0) return "is empty";
  if (name.length > MAX_NAME_LENGTH) return `is longer than ${MAX_NAME_LENGTH} characters`;
  if (!TEMPLATE_NAME.test(name)) return "must match [a-z0-9][a-z0-9._-]* (lower case, no '/' or spaces)";
  if (name.includes("..")) return "must not contain '..'";
  return null;
}

/**
 * Returns why a manifest's distro, release or flavour is not acceptable, or null. These become
 * parts of names, file names and shell commands, so they get the template name's alphabet.
 */
export function namePartProblem(value: string): string | null {
  if (value.length === 0) return "is empty";
  if (value.length > MAX_PART_LENGTH) return `is longer than ${MAX_PART_LENGTH} characters`;
  if (!NAME_PART.test(value)) return "must match [a-z0-9][a-z0-9._-]* (lower case, no '/' or spaces)";
  if (value.includes("..")) return "must not contain '..'";
  return null;
}

/** Returns why a manifest's arch is not acceptable (it is part of Proxmox's file name), or null. */
export function archProblem(arch: string): string | null {
  if (arch.length === 0) return "is empty";
  if (arch.length > MAX_ARCH_LENGTH) return `is longer than ${MAX_ARCH_LENGTH} characters`;
  if (!ARCH.test(arch)) return "must match [a-z0-9][a-z0-9_]* (such as x86_64 or arm64)";
  return null;
}

export function assertTemplateName(name: string, what = "template name"): string {
  const problem = templateNameProblem(name);
  if (problem) throw new UserError(`${what} ${JSON.stringify(name)} ${problem}`);
  return name;
}

/** Strict semver 2.0 (no leading "v", no loose parsing), at most MAX_VERSION_LENGTH characters. */
export function isVersion(version: string): boolean {
  return version.length <= MAX_VERSION_LENGTH && validSemver(version, { loose: false }) === version;
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
