import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadRecipe } from "../../builder/load-recipe.js";
import type { Recipe } from "../../builder/recipe/schema.js";
import { whatChanged } from "../../cli/build-registry.js";
import type { Manifest } from "../../common/manifest.js";
import { clearsign, makeTestKey, type TestKey } from "../fixtures/upstreams.js";
import { haveTools } from "../helpers/require-tool.js";

/**
 * `build --if-changed` for Debian without building: the suite's InRelease on a file:// mirror,
 * verified against the recipe's keyring, compared with the sha256 the newest manifest recorded.
 */
const tools = haveTools("gpg", "gpgv");
const dir = mkdtempSync(join(tmpdir(), "templar-if-changed-debian-"));
const mirror = join(dir, "mirror");
const inRelease = join(mirror, "dists/trixie/InRelease");
let key: TestKey;
let recipe: Recipe;

afterAll(() => rmSync(dir, { recursive: true, force: true }));
beforeAll(async () => {
  if (!tools) return;
  key = await makeTestKey("Debian archive test");
  writeFileSync(join(dir, "key.asc"), key.publicKeyArmored);
  // gpgv wants a binary keyring, as debian-archive-keyring ships it.
  const dearmor = spawnSync("gpg", [
    "--batch",
    "--yes",
    "--dearmor",
    "-o",
    join(dir, "keyring.gpg"),
    join(dir, "key.asc"),
  ]);
  expect(dearmor.status, dearmor.stderr?.toString()).toBe(0);
  mkdirSync(join(mirror, "dists/trixie"), { recursive: true });
  writeFileSync(inRelease, await clearsign(key, "Suite: stable\nVersion: 13.8\n"));
  writeFileSync(
    join(dir, "recipe.yaml"),
    [
      "version: auto",
      "distro: debian",
      'release: "13"',
      "arch: x86_64",
      "source:",
      "  method: debootstrap",
      "  suite: trixie",
      "  keyring: keyring.gpg",
      "  pockets: []",
      "",
    ].join("\n"),
  );
  recipe = (await loadRecipe(join(dir, "recipe.yaml")))[0]!;
});

const sha = (text: string) => createHash("sha256").update(text).digest("hex");
const ctx = () => ({
  recipe,
  cacheDir: join(dir, "cache"),
  mirror: `file://${mirror}`,
  aptDir: join(dir, "no-apt"),
  signal: new AbortController().signal,
  log: () => {},
});

function built(inReleaseSha: string, recipeSha = recipe.sha256): Manifest {
  return {
    schemaVersion: 1,
    name: recipe.name,
    version: "13.8.0",
    created: "2026-11-25T00:00:00Z",
    recipe: { path: recipe.path, sha256: recipeSha },
    source: {
      method: "debootstrap",
      inputs: [{ uri: `file://${mirror}/dists/trixie/InRelease`, sha256: inReleaseSha }],
    },
    rootfs: { tarSha256: "0".repeat(64), tarSize: 0, entries: 0 },
    artifacts: [{ format: "tar.zst", digest: `sha256:${"0".repeat(64)}`, size: 0 }],
  } as Manifest;
}

describe.skipIf(!tools)("build --if-changed, Debian", () => {
  it("nothing changed: same recipe, same InRelease", async () => {
    const now = spawnSync("cat", [inRelease], { encoding: "utf8" }).stdout;
    expect(await whatChanged(recipe, built(sha(now)), ctx())).toBeNull();
  });

  it("a new InRelease, another recipe, or no version yet: build", async () => {
    const old = spawnSync("cat", [inRelease], { encoding: "utf8" }).stdout;
    expect(await whatChanged(recipe, built(sha(old), "1".repeat(64)), ctx())).toMatch(/the recipe differs/);
    expect(await whatChanged(recipe, null, ctx())).toMatch(/no version of it yet/);
    writeFileSync(inRelease, await clearsign(key, "Suite: stable\nVersion: 13.9\n"));
    expect(await whatChanged(recipe, built(sha(old)), ctx())).toMatch(
      /dists\/trixie\/InRelease changed since debian-13-x86_64@13\.8\.0 was built/,
    );
  });

  it("an InRelease the keyring does not verify is an error, never a skip", async () => {
    writeFileSync(inRelease, "Suite: stable\nVersion: 13.8\n");
    await expect(whatChanged(recipe, built(sha("Suite: stable\nVersion: 13.8\n")), ctx())).rejects.toThrow(
      /InRelease: cannot be fetched or verified/,
    );
  });
});
