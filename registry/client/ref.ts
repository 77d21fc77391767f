import semver from "semver";
import { usageError } from "../../common/errors.js";
import { isTag, isVersion, templateNameProblem } from "../../common/names.js";
import { templatePath } from "./http.js";

/**
 * A template reference as DESIGN.md defines it: `name`, `name@<version>`, `name@<tag>` or
 * `name@<semver range>`. A bare name means the `latest` tag.
 */
export interface TemplateRef {
  name: string;
  /** What follows '@' (or "latest"): sent URL-encoded as the `{ref}` path segment. */
  ref: string;
  kind: "version" | "tag" | "range";
}

export function parseRef(text: string): TemplateRef {
  const at = text.indexOf("@");
  const name = at === -1 ? text : text.slice(0, at);
  const ref = at === -1 ? "latest" : text.slice(at + 1).trim();
  const problem = templateNameProblem(name);
  if (problem) throw usageError(`reference ${JSON.stringify(text)}: template name ${problem}`);
  if (ref === "") throw usageError(`reference ${JSON.stringify(text)}: nothing after '@'`);
  if (isVersion(ref)) return { name, ref, kind: "version" };
  if (isTag(ref)) return { name, ref, kind: "tag" };
  if (semver.validRange(ref) !== null) return { name, ref, kind: "range" };
  throw usageError(
    `reference ${JSON.stringify(text)}: ${JSON.stringify(ref)} is neither a version (1.2.3), a tag (latest) nor a range (^1.2)`,
  );
}

/** The API path of a reference's manifest: /v1/templates/{name}/{ref}. */
export function manifestPath(ref: TemplateRef): string {
  return templatePath(ref.name, ref.ref);
}
