import type { Layer, Path } from "./layer.js";

/**
 * The `extends:` rule (documented in recipes/README.md):
 * - mappings merge key by key, recursively (so `source:` can change one key of the base's);
 * - any other value in the child (scalar or list) replaces the base's value;
 * - except the top-level `steps:` list, which is appended: the base's steps run first;
 * - `extends:` itself is consumed (a base may extend another base; cycles are refused).
 */
export function mergeLayers(base: Layer, child: Layer): Layer {
  const data = mergeMaps(base.data, child.data, true);
  delete data.extends;
  const baseSteps = Array.isArray(base.data.steps) ? base.data.steps.length : 0;

  const locate = (path: Path, key?: boolean) => {
    // Steps are concatenated: an index below the base's count points into the base file.
    if (path[0] === "steps" && typeof path[1] === "number" && Array.isArray(child.data.steps)) {
      const index = path[1];
      if (index < baseSteps) return base.locate(path, key);
      return child.locate(["steps", index - baseSteps, ...path.slice(2)], key);
    }
    const fromChild = child.locate(path, key);
    const fromBase = base.locate(path, key);
    return fromChild.depth >= fromBase.depth ? fromChild : fromBase;
  };
  return { data, locate };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function mergeMaps(
  base: Record<string, unknown>,
  child: Record<string, unknown>,
  top: boolean,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(child)) {
    const old = out[key];
    if (top && key === "steps" && Array.isArray(old) && Array.isArray(value)) {
      out[key] = [...old, ...value];
    } else if (isPlainObject(old) && isPlainObject(value)) {
      out[key] = mergeMaps(old, value, false);
    } else {
      out[key] = value;
    }
  }
  return out;
}
