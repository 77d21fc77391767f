import { isMap, isPair, isScalar, isSeq, LineCounter, type Node, parseDocument } from "yaml";
import { UserError } from "../../common/errors.js";
import { formatPlace, type Place } from "./schema.js";

export type Path = readonly PropertyKey[];

/** Where a path points: the deepest YAML node found and how many path segments it matched. */
export interface Located {
  place: Place;
  depth: number;
}

/**
 * A recipe's data plus a way back from a data path (as zod reports it) to the place in the
 * YAML source that holds it. A merged recipe (extends) is a Layer too; see merge.ts.
 */
export interface Layer {
  data: Record<string, unknown>;
  locate(path: Path, key?: boolean): Located;
}

/** Parses one YAML file, keeping node ranges; a syntax error is a UserError at file:line:col. */
export function parseLayer(file: string, text: string): Layer {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number): Place => {
    const pos = lineCounter.linePos(offset);
    return { file, line: pos.line, col: pos.col };
  };
  const syntax = doc.errors[0];
  if (syntax) {
    const first = syntax.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "");
    throw new UserError(`${formatPlace(at(syntax.pos[0]))}: YAML syntax error: ${first}`);
  }
  const data = doc.toJS({ maxAliasCount: 100 }) as unknown;
  if (data === null || typeof data !== "object" || Array.isArray(data)) {
    throw new UserError(
      `${file}:1:1: expected a mapping of recipe keys (name, version, distro, source, ...)`,
    );
  }

  const locate = (path: Path, key = false): Located => {
    let node: unknown = doc.contents;
    let place = at((doc.contents as Node | null)?.range?.[0] ?? 0);
    let depth = 0;
    for (const seg of path) {
      if (isMap(node)) {
        const pair = node.items.find(
          (p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg),
        );
        if (!pair) break;
        const keyNode = pair.key as Node;
        const valueNode = pair.value as Node | null;
        const last = depth === path.length - 1;
        const target = (key && last) || !valueNode?.range ? keyNode : valueNode;
        if (target.range) place = at(target.range[0]);
        node = valueNode;
      } else if (isSeq(node) && typeof seg === "number") {
        const item = node.items[seg] as Node | undefined;
        if (!item) break;
        if (item.range) place = at(item.range[0]);
        node = item;
      } else {
        break;
      }
      depth++;
    }
    return { place, depth };
  };
  return { data: data as Record<string, unknown>, locate };
}
