import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compareVersions, diffPackages } from "../../common/package-diff.js";
import { makeTemplate, pushTemplate, startTestRegistry, type TestRegistry } from "../helpers/registry.js";
import { templar } from "../helpers/registry-process.js";

/** `templar diff`: package changes between two versions, from a registry or from files. */
const pkgs = (list: [string, string][]) => list.map(([name, version]) => ({ name, version, arch: "amd64" }));
const OLD = pkgs([
  ["bash", "5.2.15-2+b2"],
  ["libc6", "2.36-9+deb12u7"],
  ["tzdata", "2024a-0+deb12u1"],
  ["oldpkg", "1.0-1"],
]);
const NEW = pkgs([
  ["bash", "5.2.15-2+b2"],
  ["libc6", "2.36-9+deb12u8"],
  ["tzdata", "2023c-5+deb12u1"],
  ["newpkg", "2:0.9~rc1-1"],
]);

describe("package diff", () => {
  it("orders versions as dpkg does", () => {
    expect(compareVersions("2.36-9+deb12u8", "2.36-9+deb12u7")).toBe(1);
    expect(compareVersions("1.0~rc1", "1.0")).toBe(-1);
    expect(compareVersions("1:0.1", "9.9")).toBe(1);
    expect(compareVersions("1.0a", "1.0+")).toBe(-1);
    expect(compareVersions("1.10", "1.9")).toBe(1);
    expect(compareVersions("1.0-1", "1.0-1")).toBe(0);
  });

  it("names added, removed, upgraded and downgraded packages", () => {
    const d = diffPackages({ packages: OLD }, { packages: NEW });
    expect(d.added).toEqual([{ name: "newpkg", arch: "amd64", version: "2:0.9~rc1-1" }]);
    expect(d.removed).toEqual([{ name: "oldpkg", arch: "amd64", version: "1.0-1" }]);
    expect(d.changed).toEqual([
      { name: "libc6", arch: "amd64", from: "2.36-9+deb12u7", to: "2.36-9+deb12u8", kind: "upgraded" },
      { name: "tzdata", arch: "amd64", from: "2024a-0+deb12u1", to: "2023c-5+deb12u1", kind: "downgraded" },
    ]);
    expect(d.unchanged).toBe(1);
  });
});

describe("templar diff", () => {
  let r: TestRegistry;
  let dir: string;
  const a = makeTemplate("difftest-1-x86_64", "1.0.0", { extra: { packages: OLD } });
  const b = makeTemplate("difftest-1-x86_64", "1.1.0", { extra: { packages: NEW } });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "templar-diff-"));
    r = await startTestRegistry({ gc: { interval: 0 }, more: { deltas: { previous: 0 } } });
    for (const t of [a, b]) expect((await pushTemplate(r.url, r.tokens.push!, t)).status).toBe(201);
  });
  afterAll(async () => {
    await r?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("compares two versions on a registry", async () => {
    const res = await templar(["diff", `${a.name}@1.0.0`, `${a.name}@1.1.0`, "--registry", r.url]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/upgraded\s+libc6 \(amd64\)\s+2\.36-9\+deb12u7 -> 2\.36-9\+deb12u8/);
    expect(res.stdout).toMatch(/added\s+newpkg \(amd64\)\s+2:0\.9~rc1-1/);
    expect(res.stdout).toMatch(/removed\s+oldpkg/);
    expect(res.stdout).toContain("1 upgraded, 1 downgraded, 1 added, 1 removed, 1 unchanged");
    expect(res.stdout).toContain("delta patch from 1.0.0: none on the registry");
    const json = await templar([
      "diff",
      `${a.name}@1.0.0`,
      `${a.name}@latest`,
      "--registry",
      r.url,
      "--json",
    ]);
    const body = JSON.parse(json.stdout);
    expect(body.to.version).toBe("1.1.0");
    expect(body.changed.map((c: { name: string }) => c.name)).toEqual(["libc6", "tzdata"]);
    expect(body.sizes.from.tar).toBeGreaterThan(0);
  });

  it("the version page lists the changes since the previous version and links to other bases", async () => {
    const page = await (await fetch(`${r.url}/templates/${a.name}/1.1.0`)).text();
    expect(page).toContain("Changes since 1.0.0");
    expect(page).toMatch(
      /<td>upgraded<\/td><td>libc6<\/td><td>amd64<\/td><td>2\.36-9\+deb12u7<\/td><td>2\.36-9\+deb12u8<\/td>/,
    );
    expect(page).toContain(`href="/templates/${a.name}/1.1.0?since=1.0.0#changes"`);
    const first = await (await fetch(`${r.url}/templates/${a.name}/1.0.0`)).text();
    expect(first).toContain("The first version of");
  });

  it("compares out directories and manifest files, and says what is wrong with bad input", async () => {
    const outA = join(dir, "out-a");
    await mkdir(outA);
    await writeFile(join(outA, "difftest-1-x86_64-1.0.0.manifest.json"), a.manifest);
    const fileB = join(dir, "b.manifest.json");
    await writeFile(fileB, b.manifest);
    const res = await templar(["diff", outA, fileB, "--json"]);
    expect(res.code, res.stderr).toBe(0);
    expect(JSON.parse(res.stdout).added).toHaveLength(1);
    const empty = join(dir, "empty");
    await mkdir(empty);
    const bad = await templar(["diff", empty, fileB]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("expected one *.manifest.json in the directory");
    expect(bad.stderr).not.toContain("    at ");
  });
});
