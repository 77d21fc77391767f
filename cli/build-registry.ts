import rcompare from "semver/functions/rcompare.js";
import type { Recipe } from "../builder/recipe/schema.js";
import { sourceMethods } from "../builder/sources/index.js";
import type { ProbeContext } from "../builder/sources/source.js";
import { type RegistryClient, templatePath } from "../client/http.js";
import { UserError } from "../common/errors.js";
import { MAX_MANIFEST_BYTES, type Manifest, parseManifest } from "../common/manifest.js";
import { isVersion } from "../common/names.js";

/**
 * What `templar build --push URL` asks the registry: the versions a template has (for
 * `version: auto`'s serial) and, for `--if-changed`, whether the newest one was built from the
 * same recipe and the same upstream state as a build now would be.
 */
export async function registryVersions(client: RegistryClient, name: string): Promise<string[]> {
  const reply = await client.request("GET", templatePath(name), {
    what: `versions of ${name}`,
    idempotent: true,
    accept: [404],
    headers: { accept: "application/json" },
  });
  if (reply.status === 404) {
    reply.discard();
    return [];
  }
  let body: { versions?: { version?: unknown }[] };
  try {
    body = JSON.parse((await reply.buffer(16 << 20, `versions of ${name}`)).toString("utf8"));
  } catch {
    throw new UserError(`versions of ${name}: ${client.display} answered with something that is not JSON`);
  }
  if (!Array.isArray(body.versions))
    throw new UserError(`versions of ${name}: ${client.display} answered without a version list`);
  return body.versions.flatMap((v) =>
    typeof v?.version === "string" && isVersion(v.version) ? [v.version] : [],
  );
}

/** The registry's newest version of `name` (highest semantic version) and its manifest. */
export async function newestManifest(client: RegistryClient, name: string): Promise<Manifest | null> {
  const versions = (await registryVersions(client, name)).sort(rcompare);
  if (versions.length === 0) return null;
  const what = `${name}@${versions[0]}`;
  const bytes = await client.getOptional(templatePath(name, versions[0]!), what, MAX_MANIFEST_BYTES + 1);
  return bytes ? parseManifest(bytes, `${client.display}: ${what}`) : null;
}

/**
 * Why a build of `recipe` now would differ from `newest`, or null when it would not: the
 * recipe's bytes (and those of every file it extends) and every source input the source can
 * check cheaply (its probe) must be what the manifest recorded.
 */
export async function whatChanged(
  recipe: Recipe,
  newest: Manifest | null,
  ctx: ProbeContext,
): Promise<string | null> {
  if (!newest) return "the registry has no version of it yet";
  const at = `${newest.name}@${newest.version}`;
  if (newest.recipe?.sha256 !== recipe.sha256) return `the recipe differs from the one ${at} was built from`;
  const recorded = (newest.recipe as { extends?: { path?: string; sha256?: string }[] }).extends ?? [];
  if (
    recorded.length !== recipe.bases.length ||
    recipe.bases.some((b, i) => recorded[i]?.sha256 !== b.sha256)
  )
    return `a recipe it extends differs from the one ${at} was built from`;
  const method = sourceMethods[recipe.source.method]!;
  if (newest.source?.method !== method.name) return `${at} was built with another source method`;
  if (!method.probe) return `the ${method.name} source cannot tell cheaply whether upstream changed`;
  const now = await method.probe(recipe.source.config, ctx);
  const source = newest.source as { artifact?: unknown; inputs?: { uri: string; sha256?: string }[] };
  if (now.artifact !== undefined && source.artifact !== now.artifact)
    return `upstream now offers ${now.artifact} (${at} has ${String(source.artifact)})`;
  const had = new Map((source.inputs ?? []).map((i) => [i.uri, i.sha256]));
  for (const input of now.inputs) {
    if (!had.has(input.uri)) return `${input.uri} is not among the inputs of ${at}`;
    if (had.get(input.uri) !== input.sha256) return `${input.uri} changed since ${at} was built`;
  }
  return null;
}
