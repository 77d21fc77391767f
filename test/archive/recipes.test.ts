import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { loadRecipe } from "../../builder/load-recipe.js";

/**
 * The real archive recipes: they lint, and every fingerprint they pin is one FACTS.md lists
 * (the measured facts the design rests on). FACTS.md lives in the shared folder beside the
 * checkout (CI gets a copy there); TEMPLAR_FACTS may point at it.
 */
function upwards(): string[] {
  const found: string[] = [];
  for (let d = resolve("."); ; d = dirname(d)) {
    found.push(join(d, "shared/FACTS.md"), join(d, "../shared/FACTS.md"));
    if (dirname(d) === d) return found;
  }
}
const FACTS_CANDIDATES = [process.env.TEMPLAR_FACTS, ...upwards(), "/work/shared/FACTS.md"];
const factsPath = FACTS_CANDIDATES.find((p): p is string => Boolean(p) && existsSync(p!));
if (!factsPath && process.env.CI === "true")
  throw new Error("FACTS.md not found beside the checkout (set TEMPLAR_FACTS)");
if (!factsPath) console.warn("skipping the fingerprint check: FACTS.md not found (set TEMPLAR_FACTS)");

const DISTROS = ["centos", "fedora", "gentoo"];
const recipes = DISTROS.flatMap((d) =>
  readdirSync(join("recipes", d))
    .filter((f) => f.endsWith(".yaml"))
    .map((f) => join("recipes", d, f)),
);

describe("archive recipes", () => {
  it("cover CentOS Stream 9 and 10, Fedora 43 and 44, Gentoo openrc and systemd, x86_64 and aarch64", async () => {
    const names = (await Promise.all(recipes.map((r) => loadRecipe(r)))).flat().map((r) => r.name);
    for (const name of [
      "centos-9-x86_64",
      "centos-10-aarch64",
      "fedora-43-x86_64",
      "fedora-44-aarch64",
      "gentoo-openrc-x86_64",
      "gentoo-systemd-aarch64",
    ]) {
      expect(names).toContain(name);
    }
  });

  it("pass `templar recipe lint`", () => {
    const cli = resolve("dist/cli/templar.js");
    if (!existsSync(cli)) {
      if (process.env.CI === "true") throw new Error("dist/ missing: npm test builds it first");
      console.warn("skipping: dist/ not built");
      return;
    }
    const r = spawnSync(process.execPath, [cli, "recipe", "lint", ...recipes], { encoding: "utf8" });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
  });

  it.skipIf(!factsPath)("pin only fingerprints that FACTS.md lists, for the right distro", () => {
    const facts = readFileSync(factsPath!, "utf8");
    const section = (title: string) => facts.split(/^### /m).find((s) => s.startsWith(title)) ?? "";
    const known: Record<string, string> = {
      fedora: section("Fedora"),
      gentoo: section("Gentoo"),
      centos: section("CentOS"),
    };
    let pinned = 0;
    for (const recipe of recipes) {
      const data = parse(readFileSync(recipe, "utf8")) as {
        source?: { signature?: { keys?: { fingerprint: string }[] } };
      };
      const distro = recipe.split("/")[1]!;
      for (const key of data.source?.signature?.keys ?? []) {
        pinned++;
        expect(known[distro], `${recipe}: ${key.fingerprint}`).toContain(key.fingerprint.replace(/\s/g, ""));
      }
    }
    expect(pinned).toBe(4); // Fedora 43, 44 and the two Gentoo recipes; CentOS publishes no signature
    // Fedora's key of each release is the one FACTS.md names for that release number.
    for (const n of ["43", "44"]) {
      const fpr = (
        parse(readFileSync(`recipes/fedora/${n}.yaml`, "utf8")) as {
          source: { signature: { keys: { fingerprint: string }[] } };
        }
      ).source.signature.keys[0]!.fingerprint;
      expect(section("Fedora")).toMatch(new RegExp(`\\b${n}\\s+\`?${fpr}`));
    }
  });
});
