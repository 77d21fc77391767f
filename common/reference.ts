import semver from "semver";
import { usageError } from "./errors.js";
import { isTag, isVersion, templateNameProblem } from "./names.js";

/**
 * Template references (docs/formats.md "References"): `name`, `name@<version>`, `name@<tag>`
 * or `name@<semver range>`; a bare name means the `latest` tag. This module is the one grammar:
 * the client parses what a user typed with it, the registry resolves with it, and the client
 * checks the registry's answer against the same pre-release rule.
 */
export type RefKind = "version" | "tag" | "range";

export interface TemplateRef {
  name: string;
  /** What follows '@' (or "latest"): sent URL-encoded as the `{ref}` path segment. */
  ref: string;
  kind: RefKind;
}

/** What a reference after '@' is: a version, a tag, a range, or null for none of them. */
export function refKind(ref: string): RefKind | null {
  if (isVersion(ref)) return "version";
  if (isTag(ref)) return "tag";
  if (isRange(ref)) return "range";
  return null;
}

/** A semver range as npm writes them (`^13.2`, `~13.2.1`, `>=13 <14`). */
export function isRange(text: string): boolean {
  return text.length <= 256 && semver.validRange(text) !== null;
}

/**
 * Whether `version` is in `range`. The one pre-release rule: a pre-release satisfies a range only
 * if the range names a pre-release of the same major.minor.patch (semver's default), so ranges
 * never pick pre-releases unless asked for.
 */
export function inRange(version: string, range: string): boolean {
  return semver.satisfies(version, range);
}

export function parseRef(text: string): TemplateRef {
  const at = text.indexOf("@");
  const name = at === -1 ? text : text.slice(0, at);
  const ref = at === -1 ? "latest" : text.slice(at + 1).trim();
  const problem = templateNameProblem(name);
  if (problem) throw usageError(`reference ${JSON.stringify(text)}: template name ${problem}`);
  if (ref === "") throw usageError(`reference ${JSON.stringify(text)}: nothing after '@'`);
  const kind = refKind(ref);
  if (kind === null) {
    throw usageError(
      `reference ${JSON.stringify(text)}: ${JSON.stringify(ref)} is neither a version (1.2.3), a tag (latest) nor a range (^1.2)`,
    );
  }
  return { name, ref, kind };
}
