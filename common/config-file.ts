import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import type { z } from "zod";
import { UserError } from "./errors.js";

/**
 * The one loader of YAML files checked by a zod schema (the registry's config, a host's config):
 * a syntax error names the file, line and column; a schema error names the field. `missing`
 * is what an absent file means (its defaults), or undefined to make an absent file an error.
 */
export async function loadYamlFile<S extends z.ZodType>(
  path: string,
  schema: S,
  what: string,
  missing?: z.input<S>,
): Promise<z.output<S>> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" && missing !== undefined) return schema.parse(missing);
    throw new UserError(
      `${what} ${path}: ${code === "ENOENT" ? "no such file" : (err as Error).message}`,
      code === "ENOENT" ? 4 : 1,
    );
  }
  return parseYaml(text, schema, `${what} ${path}`);
}

// The YAML parser costs ~50 ms to load; commands whose config files are absent (most host
// commands) never need it, so it is loaded on first use.
let yaml: typeof import("yaml") | undefined;
const require = createRequire(import.meta.url);

export function parseYaml<S extends z.ZodType>(text: string, schema: S, where: string): z.output<S> {
  yaml ??= require("yaml") as typeof import("yaml");
  const doc = yaml.parseDocument(text);
  if (doc.errors.length) {
    const e = doc.errors[0]!;
    const pos = e.linePos?.[0];
    throw new UserError(`${where}${pos ? `:${pos.line}:${pos.col}` : ""}: ${e.message.split("\n")[0]}`);
  }
  const result = schema.safeParse(doc.toJS() ?? {});
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const field = issue.path.length ? issue.path.join(".") : "(top level)";
    throw new UserError(`${where}: ${field}: ${issue.message}`);
  }
  return result.data;
}
