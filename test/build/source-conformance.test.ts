import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { sourceMethods } from "../../builder/sources/index.js";
import type { SourceMethod } from "../../builder/sources/source.js";

/**
 * One suite, run against every row of the source-method table: what recipes and the builder
 * rely on from a method. A method must be used by at least one shipped recipe, whose `source:`
 * block is its sample (a method no recipe uses is dead code, or lacks a recipe).
 */
const recipesDir = resolve(import.meta.dirname, "../../recipes");
const sourceBlocks: Record<string, unknown>[] = readdirSync(recipesDir, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .flatMap((d) =>
    readdirSync(join(recipesDir, d.name))
      .filter((f) => f.endsWith(".yaml"))
      .map(
        (f) =>
          parse(readFileSync(join(recipesDir, d.name, f), "utf8")) as { source?: Record<string, unknown> },
      ),
  )
  .flatMap((recipe) => (recipe.source ? [recipe.source] : []));

describe.each(Object.entries(sourceMethods) as [string, SourceMethod][])(
  "source method %s",
  (key, method) => {
    const samples = sourceBlocks.filter((s) => s.method === key);

    it("is registered under its own name and used by a shipped recipe", () => {
      expect(method.name).toBe(key);
      expect(samples.length).toBeGreaterThan(0);
    });

    it("accepts every shipped recipe's source block", () => {
      for (const sample of samples) {
        const result = method.schema.safeParse(sample);
        expect(result.success, JSON.stringify(result.error?.issues)).toBe(true);
      }
    });

    it("refuses an unknown key, naming it", () => {
      const result = method.schema.safeParse({ ...samples[0], bogusKey: 1 });
      expect(result.success).toBe(false);
      expect(JSON.stringify(result.error?.issues)).toContain("bogusKey");
    });

    it("refuses a block that names another method", () => {
      expect(method.schema.safeParse({ ...samples[0], method: `${key}-not` }).success).toBe(false);
    });

    it("refuses a non-object", () => {
      for (const bad of [null, "debootstrap", 42, []])
        expect(method.schema.safeParse(bad).success).toBe(false);
    });
  },
);
