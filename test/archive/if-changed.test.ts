import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseManifest } from "../../common/manifest.js";
import { type FixtureServer, serveDirectory } from "../fixtures/http-server.js";
import { rhelTree } from "../fixtures/rootfs.js";
import { fedoraUpstream, makeUpstreams, type Upstreams } from "../fixtures/upstreams.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";
import { haveTools } from "../helpers/require-tool.js";
import { CLI, overrideRecipe, templar } from "./templar-build.js";

/**
 * `version: auto` and `templar build --if-changed --push` with the real recipes against local
 * copies of the upstreams and a real registry: a nightly job's three cases (nothing new, a
 * changed recipe, a new upstream build).
 */
const tools = haveTools("tar", "xz", "gzip", "zstd", "rpm", "rpmbuild") && existsSync(CLI);
if (!existsSync(CLI) && process.env.CI === "true")
  throw new Error("dist/ is missing: run npm run build first");
const dir = mkdtempSync(join(tmpdir(), "templar-if-changed-"));
let up: Upstreams;
let server: FixtureServer;
let registry: TestRegistry;

beforeAll(async () => {
  if (!tools) return;
  up = await makeUpstreams(join(dir, "www"));
  server = await serveDirectory(up.dir);
  registry = await startTestRegistry();
});
afterAll(async () => {
  await server?.close();
  await registry?.close();
  rmSync(dir, { recursive: true, force: true });
});

function nightly(recipe: string, out: string) {
  return templar([
    "build",
    recipe,
    "--arch",
    "x86_64",
    "--out",
    out,
    "--cache",
    join(dir, "cache"),
    "--formats",
    "zst",
    "--if-changed",
    "--push",
    registry.url,
    "--token",
    registry.tokens.push!,
  ]);
}

async function registryVersions(name: string): Promise<string[]> {
  const res = await fetch(`${registry.url}/v1/templates/${name}`);
  if (res.status === 404) return [];
  const body = (await res.json()) as { versions: { version: string }[] };
  return body.versions.map((v) => v.version).sort();
}

function manifestOf(out: string, version: string) {
  const file = readdirSync(out).find((f) => f.endsWith(`-${version}.manifest.json`));
  expect(file, `${version} in ${readdirSync(out).join(", ")}`).toBeDefined();
  return parseManifest(readFileSync(join(out, file!)), file);
}

describe.skipIf(!tools)("templar build --if-changed --push with version: auto", () => {
  it("Fedora: builds 43.0.0, skips when nothing is new, builds the next serial on a new recipe or upstream", async () => {
    const recipe = overrideRecipe(
      dir,
      "recipes/fedora/43.yaml",
      `${server.url}/fedora/linux/releases/43/Container`,
      {
        fingerprint: up.fedoraKey.fingerprint,
        url: `${server.url}/keys/fedora.gpg`,
      },
    );
    const out = join(dir, "out-fedora");
    const first = await nightly(recipe, out);
    expect(first.status, first.stderr).toBe(0);
    expect(first.stderr).toMatch(/the registry has no version of it yet/);
    expect(await registryVersions("fedora-43-x86_64")).toEqual(["43.0.0"]);
    const manifest = manifestOf(out, "43.0.0");
    expect(manifest.version).toBe("43.0.0");
    expect((manifest as { distroRelease?: string }).distroRelease).toBe("43");
    const page = await (await fetch(`${registry.url}/templates/fedora-43-x86_64/43.0.0`)).text();
    expect(page).toMatch(/<dt>distro release<\/dt><dd>43 /);

    // Nothing new upstream, same recipe: skipped, quickly, nothing pushed.
    const started = Date.now();
    const again = await nightly(recipe, join(dir, "out-fedora-2"));
    const seconds = (Date.now() - started) / 1000;
    expect(again.status, again.stderr).toBe(0);
    expect(again.stderr).toMatch(
      /build fedora-43-x86_64: skipped: fedora-43-x86_64@43\.0\.0 in .* has the same recipe and upstream inputs/,
    );
    expect(seconds).toBeLessThan(10);
    expect(existsSync(join(dir, "out-fedora-2"))).toBe(false);
    expect(await registryVersions("fedora-43-x86_64")).toEqual(["43.0.0"]);

    // A changed recipe: the next serial (counted in the registry: a fresh out-dir).
    writeFileSync(recipe, `${readFileSync(recipe, "utf8")}description: Fedora 43, changed\n`);
    const changed = await nightly(recipe, join(dir, "out-fedora-3"));
    expect(changed.status, changed.stderr).toBe(0);
    expect(changed.stderr).toMatch(
      /the recipe differs from the one fedora-43-x86_64@43\.0\.0 was built from/,
    );
    expect(await registryVersions("fedora-43-x86_64")).toEqual(["43.0.0", "43.0.1"]);
    const skip = await nightly(recipe, join(dir, "out-fedora-4"));
    expect(skip.stderr).toMatch(/skipped: fedora-43-x86_64@43\.0\.1/);

    // Upstream publishes new bytes under the same name (its signed CHECKSUM changes).
    await fedoraUpstream(up.dir, up.fedoraKey, (r) => {
      rhelTree(r, "fedora", "43");
      writeFileSync(join(r, "etc/motd"), "rebuilt upstream\n");
    });
    const upstream = await nightly(recipe, join(dir, "out-fedora-5"));
    expect(upstream.status, upstream.stderr).toBe(0);
    expect(upstream.stderr).toMatch(/CHECKSUM changed since fedora-43-x86_64@43\.0\.1 was built/);
    expect(await registryVersions("fedora-43-x86_64")).toEqual(["43.0.0", "43.0.1", "43.0.2"]);
  });

  it("Gentoo: the stage3 timestamp names the version; a build into the same out-dir takes the next serial", async () => {
    const recipe = overrideRecipe(dir, "recipes/gentoo/openrc.yaml", `${server.url}/gentoo/releases`, {
      fingerprint: up.gentooKey.fingerprint,
      url: `${server.url}/keys/service-keys.gpg`,
    });
    const out = join(dir, "out-gentoo");
    const local = () =>
      templar([
        "build",
        recipe,
        "--arch",
        "x86_64",
        "--out",
        out,
        "--cache",
        join(dir, "cache"),
        "--formats",
        "zst",
      ]);
    const first = await local();
    expect(first.status, first.stderr).toBe(0);
    const manifest = manifestOf(out, "2026.1117.0");
    expect((manifest as { distroRelease?: string }).distroRelease).toBe("20261117");
    const second = await local();
    expect(second.status, second.stderr).toBe(0);
    manifestOf(out, "2026.1117.1");
  });

  it("--if-changed without --push is a usage error", async () => {
    const r = await templar(["build", "recipes/fedora/43.yaml", "--if-changed"]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--if-changed needs --push URL/);
  });
});
