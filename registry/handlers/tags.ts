import { CodedError } from "../../common/error-codes.js";
import { isVersion } from "../../common/names.js";
import { readLimited } from "../http/body.js";
import { type Ctx, deps, nameParam, need, tagParam } from "../http/context.js";

/** PUT /v1/templates/{name}/tags/{tag}: body is the version (plain text, or JSON {"version"}). */
export async function putTag(c: Ctx): Promise<Response> {
  const name = nameParam(c);
  const tag = tagParam(c);
  need(c, "push", name);
  const body = (await readLimited(c, 1024, "tag body")).toString("utf8").trim();
  let version = body;
  if (body.startsWith("{")) {
    try {
      version = String((JSON.parse(body) as { version?: unknown }).version ?? "");
    } catch {
      throw new CodedError("VERSION_INVALID", 'tag body must be a version, or JSON {"version": "1.2.3"}');
    }
  }
  if (!isVersion(version))
    throw new CodedError("VERSION_INVALID", `${JSON.stringify(version)} is not a semantic version`);
  await deps(c).store.setTag(name, tag, version);
  return c.json({ name, tag, version }, 200);
}

/** DELETE /v1/templates/{name}/tags/{tag}. Removing `latest` makes it follow the highest release again. */
export async function deleteTag(c: Ctx): Promise<Response> {
  const name = nameParam(c);
  const tag = tagParam(c);
  need(c, "push", name);
  await deps(c).store.deleteTag(name, tag);
  return c.body(null, 204);
}
