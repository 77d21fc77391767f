import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { loadRecipe } from "../../builder/load-recipe.js";

/**
 * The real archive recipes: they lint, and every fingerprint they pin is one that docs/formats.md
 * lists ("Upstream signing keys the shipped recipes pin"), for the same distro and release: a
 * key changes in a recipe only together with the documentation users check it against.
 */
function documentedKeys(): { who: string; fingerprint: string }[] {
  const text = readFileSync("docs/formats.md", "utf8");
  const section = text.split(/^### Upstream signing keys/m)[1]?.split(/^#/m)[0] ?? "";
  return section
    .split("\n")
    .filter((line) => line.startsWith("|") && !/^\|\s*(-|distro\b)/.test(line))
    .map((line) => line.split("|").map((cell) => cell.trim()))
    .map((cells) => ({ who: cells[1]!.toLowerCase(), fingerprint: cells[3]!.replace(/`/g, "") }));
}

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

  it("pin only fingerprints that docs/formats.md lists, for the right distro and release", () => {
    const keys = documentedKeys();
    expect(keys.length).toBeGreaterThanOrEqual(3);
    const known = (distro: string) =>
      keys.filter((k) => k.who.split(/\s+/)[0]!.startsWith(distro)).map((k) => k.fingerprint);
    let pinned = 0;
    for (const recipe of recipes) {
      const data = parse(readFileSync(recipe, "utf8")) as {
        source?: { signature?: { keys?: { fingerprint: string }[] } };
      };
      const distro = recipe.split("/")[1]!;
      for (const key of data.source?.signature?.keys ?? []) {
        pinned++;
        expect(known(distro), `${recipe}: ${key.fingerprint}`).toContain(key.fingerprint.replace(/\s/g, ""));
      }
    }
    expect(pinned).toBe(4); // Fedora 43, 44 and the two Gentoo recipes; CentOS publishes no signature
    // Fedora's key of each release is the one documented for that release number.
    for (const n of ["43", "44"]) {
      const fpr = (
        parse(readFileSync(`recipes/fedora/${n}.yaml`, "utf8")) as {
          source: { signature: { keys: { fingerprint: string }[] } };
        }
      ).source.signature.keys[0]!.fingerprint;
      expect(keys.find((k) => k.who === `fedora ${n}`)?.fingerprint).toBe(fpr);
    }
  });
});
