import { execFileSync, spawnSync } from "node:child_process";
import { mkdtemp, readdir, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Spec, Validation } from "@cyclonedx/cyclonedx-library";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hostDebianMirror } from "../../builder/sources/apt-sources.js";
import { type Manifest, parseManifest } from "../../common/manifest.js";
import { packagePurl } from "../../common/sbom/purl.js";
import type { SpdxDocument } from "../../common/sbom/spdx.js";
import { sha256, startTestRegistry, type TestRegistry } from "../helpers/registry.js";
import { templar } from "../helpers/registry-process.js";
import { haveTools, isRoot } from "../helpers/require-tool.js";
import { spdxValidator } from "../helpers/spdx-schema.js";

/**
 * Two REAL builds of recipes/debian/12-minimal.yaml through `templar build --push`: as the
 * release shipped (its source with `pockets: []`) and as of today (with bookworm-updates and
 * bookworm-security, which have upgraded packages since the release). On that pair: the
 * registry's delta patch updates a host's cache to the exact signed tar at a fraction of the
 * bytes; `templar diff` and the version page name the upgraded packages with both versions;
 * the SBOMs (CycloneDX and SPDX) list every package with its purl and validate against the
 * official schemas.
 */
const mirror = process.env.TEMPLAR_DEBIAN_MIRROR ?? hostDebianMirror();
function canBuild(): boolean {
  if (!isRoot() || !mirror) {
    const why = !isRoot() ? "real Debian builds need root" : "no Debian mirror in the host's apt sources";
    if (process.env.CI === "true") throw new Error(why);
    console.warn(`skipping: ${why}`);
    return false;
  }
  return haveTools("mmdebstrap", "tar", "zstd", "unshare", "chroot");
}
const enabled = canBuild();
const RECIPE = resolve("recipes/debian/12-minimal.yaml");
const NAME = "debian-12-x86_64-minimal";
const LONG = 1_200_000;

interface Built {
  manifest: Manifest;
  out: string;
}

describe.skipIf(!enabled)("a real Debian pair: as released and with updates", () => {
  let work: string;
  let r: TestRegistry;
  let released: Built;
  let updated: Built;

  async function build(label: string, recipe: string): Promise<Built> {
    const file = join(work, `${label}.yaml`);
    await writeFile(file, recipe);
    const out = join(work, `out-${label}`);
    const res = await templar(
      [
        "build",
        file,
        ...["--arch", "x86_64", "--formats", "zst", "--cache", join(work, "cache"), "--mirror", mirror!],
        ...["--out", out, "--push", r.url, "--sbom"],
      ],
      { TEMPLAR_TOKEN: r.tokens.push! },
    );
    expect(res.code, res.stderr).toBe(0);
    const name = (await readdir(out)).find((f) => f.endsWith(".manifest.json"))!;
    return { manifest: parseManifest(await readFile(join(out, name)), name), out };
  }

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "templar-debian-pair-"));
    // Level 3 patches: made in a second; level 19 (the default) makes them smaller in a minute.
    r = await startTestRegistry({ gc: { interval: 0 }, more: { deltas: { previous: 1, level: 3 } } });
    const recipe = (await readFile(RECIPE, "utf8")).replace(/^arch: .*$/m, "arch: [x86_64]");
    released = await build(
      "released",
      recipe.replace(/^ {2}method: debootstrap$/m, "  method: debootstrap\n  pockets: []"),
    );
    updated = await build("updated", recipe);
    await r.registry.deps.deltas!.idle();
  }, LONG);

  afterAll(async () => {
    await r?.close();
    if (work) spawnSync("rm", ["-rf", "--one-file-system", work]);
  });

  /** Packages whose version differs between the builds: what an update brought. */
  function upgrades(): { name: string; arch: string; from: string; to: string }[] {
    const before = new Map(released.manifest.packages!.map((p) => [`${p.name}/${p.arch}`, p.version]));
    return updated.manifest
      .packages!.filter(
        (p) => before.has(`${p.name}/${p.arch}`) && before.get(`${p.name}/${p.arch}`) !== p.version,
      )
      .map((p) => ({ name: p.name, arch: p.arch, from: before.get(`${p.name}/${p.arch}`)!, to: p.version }))
      .sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  it("the registry numbered the builds and the update pockets upgraded packages", () => {
    expect(released.manifest.name).toBe(NAME);
    expect(updated.manifest.version).not.toBe(released.manifest.version);
    expect(upgrades().length).toBeGreaterThan(0);
  });

  it(
    "a host holding the released build updates through the patch to the exact signed tar",
    async () => {
      const cache = join(work, "cache-host");
      const first = await templar(
        [
          "pull",
          `${NAME}@${released.manifest.version}`,
          "--registry",
          r.url,
          "--dest",
          cache,
          "--format",
          "zst",
        ],
        {
          TEMPLAR_ALLOW_UNSIGNED: "1",
        },
      );
      expect(first.code, first.stderr).toBe(0);
      // Over loopback a full download beats rebuilding (README "Delta updates"): --delta auto
      // would take it; the patch is what is tested here.
      const res = await templar(
        ["update", "--all", "--dest", cache, "--registry", r.url, "--delta", "always", "--json"],
        { TEMPLAR_ALLOW_UNSIGNED: "1" },
      );
      expect(res.code, res.stderr).toBe(0);
      const artifact = updated.manifest.artifacts.find((a) => a.format === "tar.zst")!;
      const origin = JSON.parse(
        await readFile(join(cache, ".templar", `${NAME}.tar.zst.origin.json`), "utf8"),
      );
      expect(origin).toMatchObject({ version: updated.manifest.version, via: "delta" });
      const index = await r.store.deltas.get(NAME, updated.manifest.version);
      const patch = index!.deltas.find((d) => d.fromVersion === released.manifest.version)!;
      expect(patch.size).toBeLessThanOrEqual(artifact.size * 0.1);
      const tar = execFileSync("zstd", ["-dc", join(cache, `${NAME}.tar.zst`)], { maxBuffer: 1 << 30 });
      expect(sha256(tar)).toBe(updated.manifest.rootfs.tarSha256);
    },
    LONG,
  );

  it("templar diff and the version page name each upgraded package with its old and new version", async () => {
    const expected = upgrades();
    const res = await templar([
      "diff",
      `${NAME}@${released.manifest.version}`,
      `${NAME}@${updated.manifest.version}`,
      "--registry",
      r.url,
      "--json",
    ]);
    expect(res.code, res.stderr).toBe(0);
    const diff = JSON.parse(res.stdout) as {
      changed: { name: string; arch: string; from: string; to: string; kind: string }[];
    };
    expect(diff.changed.map(({ name, arch, from, to }) => ({ name, arch, from, to }))).toEqual(expected);
    expect(diff.changed.every((c) => c.kind === "upgraded")).toBe(true);

    const page = await (await fetch(`${r.url}/templates/${NAME}/${updated.manifest.version}`)).text();
    expect(page).toContain(`Changes since ${released.manifest.version}`);
    const fromHtml = (s: string) =>
      s
        .replace(/&lt;/g, "<")
        .replace(/&gt;/g, ">")
        .replace(/&quot;/g, '"')
        .replace(/&#39;/g, "'")
        .replace(/&amp;/g, "&");
    const rows = [
      ...page.matchAll(
        /<tr><td>upgraded<\/td><td>([^<]*)<\/td><td>([^<]*)<\/td><td>([^<]*)<\/td><td>([^<]*)<\/td><\/tr>/g,
      ),
    ].map((m) => ({
      name: fromHtml(m[1]!),
      arch: fromHtml(m[2]!),
      from: fromHtml(m[3]!),
      to: fromHtml(m[4]!),
    }));
    expect(rows).toEqual(expected);
  });

  it("both builds' CycloneDX SBOMs list every package with its purl and validate against the 1.6 schema", async () => {
    const validator = new Validation.JsonStrictValidator(Spec.Version.v1dot6);
    for (const b of [released, updated]) {
      const res = await fetch(`${r.url}/v1/templates/${NAME}/${b.manifest.version}/sbom`);
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(await validator.validate(text)).toBeNull();
      // The file --sbom wrote beside the manifest is the same document.
      const file = join(b.out, `${NAME}-${b.manifest.version}.cdx.json`);
      expect(await readFile(file, "utf8")).toBe(text);
      const purls = new Set((JSON.parse(text).components as { purl?: string }[]).map((c) => c.purl));
      const missing = b.manifest.packages!.filter((p) => !purls.has(packagePurl(b.manifest, p)));
      expect(missing).toEqual([]);
      expect(b.manifest.packages!.length).toBeGreaterThan(50);
    }
  });

  it("both builds' SPDX SBOMs list every package with its purl and validate against the 2.3 schema", async () => {
    const validate = spdxValidator();
    for (const b of [released, updated]) {
      const res = await fetch(`${r.url}/v1/templates/${NAME}/${b.manifest.version}/sbom?format=spdx`);
      expect(res.status).toBe(200);
      const text = await res.text();
      expect(validate(text)).toBeNull();
      expect(await readFile(join(b.out, `${NAME}-${b.manifest.version}.spdx.json`), "utf8")).toBe(text);
      const purls = new Set(
        (JSON.parse(text) as SpdxDocument).packages.flatMap((p) =>
          (p.externalRefs ?? []).map((e) => e.referenceLocator),
        ),
      );
      expect(b.manifest.packages!.filter((p) => !purls.has(packagePurl(b.manifest, p)!))).toEqual([]);
    }
  });
});
