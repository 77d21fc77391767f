import { isVersion } from "../../common/names.js";
import { readLimited } from "../body.js";
import { type Ctx, deps, nameParam, need, tagParam } from "../context.js";
import { badRequest, notFound } from "../errors.js";
import { keys } from "../keys.js";

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
      throw badRequest("VERSION_INVALID", 'tag body must be a version, or JSON {"version": "1.2.3"}');
    }
  }
  if (!isVersion(version))
    throw badRequest("VERSION_INVALID", `${JSON.stringify(version)} is not a semantic version`);
  const { storage, index } = deps(c);
  if (!(await storage.statObject(keys.manifest(name, version)))) {
    throw badRequest("VERSION_UNKNOWN", `${name}@${version} does not exist; push it before tagging it`);
  }
  await storage.putObject(keys.tag(name, tag), Buffer.from(`${version}\n`));
  index.invalidate(name);
  return c.json({ name, tag, version }, 200);
}

/** DELETE /v1/templates/{name}/tags/{tag}. Removing `latest` makes it follow the highest release again. */
export async function deleteTag(c: Ctx): Promise<Response> {
  const name = nameParam(c);
  const tag = tagParam(c);
  need(c, "push", name);
  const { storage, index } = deps(c);
  if (!(await storage.statObject(keys.tag(name, tag))))
    throw notFound("TAG_UNKNOWN", `${name} has no tag ${tag}`);
  await storage.deleteObject(keys.tag(name, tag));
  index.invalidate(name);
  return c.body(null, 204);
}
