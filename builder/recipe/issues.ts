import type { z } from "zod";
import { UserError } from "../../common/errors.js";
import type { Layer, Path } from "./layer.js";
import { formatPlace } from "./schema.js";

/**
 * Validates `value` (found at `prefix` in the recipe) against `schema`; on failure throws one
 * UserError naming file:line:column of the offending YAML node and what was expected. When
 * several things are wrong, the one earliest in the file is reported.
 */
export function validateAt<T extends z.ZodType>(
  schema: T,
  value: unknown,
  layer: Layer,
  prefix: Path,
): z.infer<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const path = [...prefix, ...issue.path];
    const unknownKey = issue.code === "unrecognized_keys" ? issue.keys[0] : undefined;
    const located = unknownKey !== undefined ? layer.locate([...path, unknownKey], true) : layer.locate(path);
    return { located, depth: path.length, text: describe(issue, path, schema, prefix.length, unknownKey) };
  });
  // Earliest line first; on one line the most specific (deepest) problem, then the column.
  problems.sort(
    (a, b) =>
      a.located.place.line - b.located.place.line ||
      b.depth - a.depth ||
      a.located.place.col - b.located.place.col,
  );
  const first = problems[0]!;
  throw new UserError(`${formatPlace(first.located.place)}: ${first.text}`);
}

function dotted(path: Path): string {
  if (path.length === 0) return "recipe";
  return path
    .map((seg, i) => (typeof seg === "number" ? `[${seg}]` : i === 0 ? String(seg) : `.${String(seg)}`))
    .join("");
}

function describe(
  issue: z.core.$ZodIssue,
  path: Path,
  schema: z.ZodType,
  prefixLength: number,
  unknownKey: string | undefined,
): string {
  const where = dotted(path);
  switch (issue.code) {
    case "unrecognized_keys": {
      const allowed = keysAt(schema, path.slice(prefixLength));
      const hint = allowed.length ? ` (expected one of: ${allowed.join(", ")})` : "";
      return `${where}: unknown key "${unknownKey}"${hint}`;
    }
    case "invalid_type": {
      const missing = /received undefined$/.test(issue.message);
      if (missing) return `${dotted(path.slice(0, -1))}: missing required key "${String(path.at(-1))}"`;
      return `${where}: expected ${issue.expected}, got ${issue.message.replace(/^.*received /, "")}`;
    }
    case "invalid_value":
      return `${where}: expected one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
    case "invalid_union": {
      const expected = issue.errors
        .map((branch) => branch[0])
        .filter((i): i is z.core.$ZodIssue => i !== undefined)
        .map((i) =>
          i.code === "invalid_type"
            ? i.expected
            : i.code === "invalid_value"
              ? i.values.join("|")
              : i.message,
        );
      return `${where}: expected ${[...new Set(expected)].join(" or ")}`;
    }
    default:
      return `${where}: ${issue.message}`;
  }
}

/** The keys an object schema accepts at `path`, for "expected one of" hints (best effort). */
function keysAt(schema: z.ZodType, path: Path): string[] {
  let node: unknown = schema;
  const step = (s: unknown): unknown => {
    // Unwrap optional/default/pipe wrappers down to the object or array underneath.
    for (let i = 0; i < 8; i++) {
      const def = (s as { _zod?: { def?: Record<string, unknown> } })?._zod?.def;
      if (!def) return s;
      if (def.type === "optional" || def.type === "default" || def.type === "nullable") s = def.innerType;
      else if (def.type === "pipe") s = def.in;
      else return s;
    }
    return s;
  };
  for (const seg of path) {
    node = step(node);
    const def = (node as { _zod: { def: Record<string, unknown> } })._zod?.def;
    if (!def) return [];
    if (def.type === "object") node = (def.shape as Record<string, unknown>)[String(seg)];
    else if (def.type === "array") node = def.element;
    else if (def.type === "record") node = def.valueType;
    else return [];
  }
  const def = (step(node) as { _zod?: { def: Record<string, unknown> } })?._zod?.def;
  return def?.type === "object" ? Object.keys(def.shape as object) : [];
}
