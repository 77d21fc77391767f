import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { dirname, isAbsolute, relative, resolve } from "node:path";
import { ExitCode, UserError } from "../common/errors.js";
import { parsePackOutputs } from "../common/formats.js";
import { assertTemplateName } from "../common/names.js";
import { families } from "./family/index.js";
import { validateAt } from "./recipe/issues.js";
import { type Layer, parseLayer } from "./recipe/layer.js";
import { mergeLayers } from "./recipe/merge.js";
import { deriveName, formatPlace, type Recipe, RecipeFileSchema, type RecipeStep } from "./recipe/schema.js";
import { sourceMethods } from "./sources/index.js";
import { stepKinds } from "./steps/index.js";

/** How a recipe path is shown and recorded: relative to the working directory when inside it. */
function displayPath(abs: string): string {
  const rel = relative(process.cwd(), abs);
  return rel && !rel.startsWith("..") && !isAbsolute(rel) ? rel : abs;
}

interface LoadedFile {
  layer: Layer;
  files: { path: string; sha256: string }[];
}

async function loadFile(abs: string, chain: string[]): Promise<LoadedFile> {
  const shown = displayPath(abs);
  let bytes: Buffer;
  try {
    bytes = await readFile(abs);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT" ? "no such file" : code === "EISDIR" ? "is a directory" : (err as Error).message;
    throw new UserError(
      `${shown}: cannot read recipe: ${why}`,
      code === "ENOENT" ? ExitCode.notFound : ExitCode.failure,
    );
  }
  const self = parseLayer(shown, bytes.toString("utf8"));
  const file = { path: shown, sha256: createHash("sha256").update(bytes).digest("hex") };
  const ext = self.data.extends;
  if (ext === undefined) return { layer: self, files: [file] };
  if (typeof ext !== "string" || ext.length === 0) {
    throw new UserError(
      `${formatPlace(self.locate(["extends"]).place)}: extends: expected a relative path to a base recipe`,
    );
  }
  const baseAbs = resolve(dirname(abs), ext);
  if ([...chain, abs].includes(baseAbs)) {
    throw new UserError(
      `${formatPlace(self.locate(["extends"]).place)}: extends: ${ext} is already being extended (a cycle)`,
    );
  }
  let base: LoadedFile;
  try {
    base = await loadFile(baseAbs, [...chain, abs]);
  } catch (err) {
    // A missing base is the child's mistake: point at its `extends:` line.
    if (err instanceof UserError && err.message.startsWith(`${displayPath(baseAbs)}: cannot read`)) {
      throw new UserError(`${formatPlace(self.locate(["extends"]).place)}: extends: ${err.message}`);
    }
    throw err;
  }
  return { layer: mergeLayers(base.layer, self), files: [file, ...base.files] };
}

/**
 * Loads a recipe file: YAML with positions, `extends:` merged (merge.ts), validated (the
 * recipe schema, then the source method's and each step kind's own schema), the `arch` matrix
 * expanded. Any problem is one UserError naming file:line:column and what was expected.
 */
export async function loadRecipe(path: string): Promise<Recipe[]> {
  const abs = resolve(path);
  const { layer, files } = await loadFile(abs, []);
  const data = validateAt(RecipeFileSchema, layer.data, layer, []);
  const at = (p: (string | number)[]) => layer.locate(p).place;

  if (!families.some((f) => f.distros.includes(data.distro))) {
    const known = families.flatMap((f) => f.distros).join(", ");
    throw new UserError(
      `${formatPlace(at(["distro"]))}: distro: "${data.distro}" is not supported (expected one of: ${known})`,
    );
  }
  const method = sourceMethods[data.source.method];
  if (!method) {
    throw new UserError(
      `${formatPlace(at(["source", "method"]))}: source.method: unknown source method "${data.source.method}" ` +
        `(expected one of: ${Object.keys(sourceMethods).join(", ")})`,
    );
  }
  const sourceConfig = validateAt(method.schema, layer.data.source, layer, ["source"]);

  const rawSteps = (layer.data.steps as unknown[] | undefined) ?? [];
  const steps: RecipeStep[] = data.steps.map((step, index) => {
    const keys = Object.keys(step);
    const place = at(["steps", index]);
    if (keys.length !== 1) {
      throw new UserError(
        `${formatPlace(place)}: steps[${index}]: expected exactly one step kind (${Object.keys(stepKinds).join(", ")}), got ${keys.length === 0 ? "none" : keys.join(", ")}`,
      );
    }
    const kind = keys[0]!;
    const stepKind = stepKinds[kind];
    if (!stepKind) {
      throw new UserError(
        `${formatPlace(layer.locate(["steps", index, kind], true).place)}: steps[${index}]: unknown step kind "${kind}" (expected one of: ${Object.keys(stepKinds).join(", ")})`,
      );
    }
    const raw = (rawSteps[index] as Record<string, unknown>)[kind];
    return { kind, config: validateAt(stepKind.schema, raw, layer, ["steps", index, kind]), place };
  });

  const arches = Array.isArray(data.arch) ? [...new Set(data.arch)] : [data.arch];
  if (data.name !== undefined && arches.length > 1) {
    throw new UserError(
      `${formatPlace(at(["name"]))}: name: a fixed name cannot cover an arch matrix; leave it out to get <distro>-<release>-<arch>[-<flavour>]`,
    );
  }
  const created = data.created === undefined ? undefined : Math.floor(Date.parse(data.created) / 1000);
  const [own, ...bases] = files;
  return arches.map((arch) => {
    const name = data.name ?? deriveName(data.distro, data.release, arch, data.flavour);
    assertTemplateName(name, `${formatPlace(at(["name"]))}: template name`);
    return {
      path: own!.path,
      sha256: own!.sha256,
      bases,
      name,
      version: data.version,
      distro: data.distro,
      release: data.release,
      arch,
      flavour: data.flavour,
      description: data.description,
      created,
      source: { method: method.name, config: sourceConfig, place: at(["source"]) },
      steps,
      ...(data.formats ? parsePackOutputs(data.formats, "formats") : {}),
    };
  });
}
