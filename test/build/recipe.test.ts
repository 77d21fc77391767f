import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { archProblem, hostArch } from "../../builder/arch.js";
import { buildTemplate } from "../../builder/build.js";
import { parseDpkgStatus } from "../../builder/inventory/dpkg.js";
import { loadRecipe } from "../../builder/load-recipe.js";
import { pathInRoot, replaceFile } from "../../builder/rootfs.js";
import {
  hostDebianMirror,
  parseDeb822Sources,
  parseOneLineSources,
} from "../../builder/sources/apt-sources.js";
import { UserError } from "../../common/errors.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "templar-recipe-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const BASE = `version: 1.0.0
distro: debian
release: "13"
arch: x86_64
source:
  method: debootstrap
  suite: trixie
`;

async function write(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

async function lintError(name: string, text: string): Promise<string> {
  const path = await write(name, text);
  const err = await loadRecipe(path).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UserError);
  const message = (err as UserError).message;
  expect(message).not.toContain("\n");
  return message;
}

describe("recipe loading", () => {
  it("loads the shipped Debian recipes and expands the arch matrix", async () => {
    const recipes = await loadRecipe("recipes/debian/13-standard.yaml");
    expect(recipes.map((r) => r.name)).toEqual(["debian-13-x86_64-standard", "debian-13-aarch64-standard"]);
    const [x86] = recipes;
    expect(x86!.source.config).toMatchObject({ suite: "trixie", variant: "minbase" });
    expect((x86!.source.config as { include: string[] }).include).toContain("openssh-server");
    // Base steps first, then the child's.
    expect(x86!.steps.map((s) => s.kind)).toEqual(["preset", "file", "run"]);
    expect(x86!.steps[0]!.place.file).toBe("recipes/debian/13-minimal.yaml");
    expect(x86!.bases.map((b) => b.path)).toEqual(["recipes/debian/13-minimal.yaml"]);
    for (const file of ["12-minimal", "12-standard", "13-minimal"]) {
      const loaded = await loadRecipe(`recipes/debian/${file}.yaml`);
      expect(loaded).toHaveLength(2);
    }
  });

  it("names syntax errors by file, line and column", async () => {
    const msg = await lintError("syntax.yaml", `${BASE}steps:\n  - run: "unterminated\n`);
    expect(msg).toMatch(/^\S*syntax\.yaml:\d+:\d+: YAML syntax error: /);
  });

  it("formats: takes host names (lxc, incus) as tar.xz plus their metadata; an unknown word is named", async () => {
    const path = await write("hosts.yaml", `${BASE}formats: [tar.zst, lxc, incus]\n`);
    const [recipe] = await loadRecipe(path);
    expect(recipe!.formats).toEqual(["tar.zst", "tar.xz"]);
    expect(recipe!.meta).toEqual(["lxc-meta.tar.xz", "incus-meta.tar.xz"]);
    expect(await lintError("bad-format.yaml", `${BASE}formats: [tar.zst, lxd]\n`)).toMatch(
      /bad-format\.yaml:\d+:\d+: formats/,
    );
  });

  it("names a wrong type at its node", async () => {
    expect(await lintError("type.yaml", BASE.replace("arch: x86_64", "arch: 42"))).toMatch(
      /type\.yaml:4:7: arch: expected x86_64\|aarch64 or array/,
    );
    expect(await lintError("version.yaml", BASE.replace("1.0.0", "one"))).toMatch(
      /version\.yaml:1:10: version: expected a semantic version/,
    );
  });

  it("refuses unknown keys, at top level, in source and in steps", async () => {
    expect(await lintError("top.yaml", `${BASE}colour: blue\n`)).toMatch(
      /top\.yaml:8:1: recipe: unknown key "colour" \(expected one of: extends, name/,
    );
    expect(await lintError("src.yaml", `${BASE}  mirorr: x\n`)).toMatch(
      /src\.yaml:8:3: source: unknown key "mirorr" \(expected one of: method, suite/,
    );
    expect(
      await lintError("step.yaml", `${BASE}steps:\n  - file: { path: /x, content: y, perm: 1 }\n`),
    ).toMatch(/step\.yaml:9:35: steps\[0\]\.file: unknown key "perm"/);
    expect(await lintError("kind.yaml", `${BASE}steps:\n  - preset: container\n  - reboot: now\n`)).toMatch(
      /kind\.yaml:10:5: steps\[1\]: unknown step kind "reboot"/,
    );
  });

  it("names an unknown source method and a missing suite", async () => {
    expect(await lintError("method.yaml", BASE.replace("method: debootstrap", "method: rsync"))).toMatch(
      /method\.yaml:6:11: source\.method: unknown source method "rsync" \(expected one of: debootstrap, archive\)/,
    );
    expect(await lintError("suite.yaml", BASE.replace("  suite: trixie\n", "  variant: minbase\n"))).toMatch(
      /suite\.yaml:6:3: source: missing required key "suite"/,
    );
  });

  it("merges extends: maps deep, lists replaced, steps appended; errors point into the right file", async () => {
    await write("base.yaml", `${BASE}  include: [a1, b1]\nsteps:\n  - preset: container\nflavour: minimal\n`);
    const child = await write(
      "child.yaml",
      `extends: base.yaml\nflavour: big\nsource:\n  include: [c1]\nsteps:\n  - run: "true"\n`,
    );
    const [r] = await loadRecipe(child);
    expect(r!.name).toBe("debian-13-x86_64-big");
    expect(r!.source.config).toMatchObject({ suite: "trixie", include: ["c1"] });
    expect(r!.steps.map((s) => s.kind)).toEqual(["preset", "run"]);
    expect(r!.steps[1]!.place).toMatchObject({ line: 6, col: 5 });
    // A bad value inherited from the base is reported in the base file.
    await write("badbase.yaml", BASE.replace("suite: trixie", "suite: 7"));
    expect(await lintError("badchild.yaml", "extends: badbase.yaml\nflavour: x\n")).toMatch(
      /badbase\.yaml:7:10: source\.suite: expected string/,
    );
    expect(await lintError("loop.yaml", "extends: loop.yaml\n")).toMatch(/loop\.yaml:1:10: extends: .*cycle/);
    expect(await lintError("nobase.yaml", "extends: missing.yaml\n")).toMatch(
      /nobase\.yaml:1:10: extends: .*no such file/,
    );
  });

  it("refuses a fixed name over an arch matrix", async () => {
    const text = BASE.replace("arch: x86_64", "arch: [x86_64, aarch64]").replace(
      "version",
      "name: fixed\nversion",
    );
    expect(await lintError("matrix.yaml", text)).toMatch(
      /matrix\.yaml:1:7: name: a fixed name cannot cover an arch matrix/,
    );
  });
});

describe("foreign architectures", () => {
  it("builds the host's arch and names qemu-user-static for a foreign one", async () => {
    expect(archProblem(hostArch())).toBeNull();
    const foreign = hostArch() === "x86_64" ? "aarch64" : "x86_64";
    if (existsSync(`/proc/sys/fs/binfmt_misc/qemu-${foreign}`)) return; // this host can run it
    expect(archProblem(foreign)).toMatch(/needs qemu-user-static/);
    const recipe = (await loadRecipe("recipes/debian/13-minimal.yaml")).find((r) => r.arch === foreign)!;
    const out = join(dir, "foreign-out");
    const err = await buildTemplate(recipe, { outDir: out, cacheDir: join(dir, "cache") }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(
      new RegExp(
        `^recipes/debian/13-minimal\\.yaml: debian-13-${foreign}-minimal: building for ${foreign} .* needs qemu-user-static`,
      ),
    );
  });
});

describe("apt sources of the build host", () => {
  it("reads deb822 and one-line sources, skipping security and disabled entries", async () => {
    const deb822 = parseDeb822Sources(
      "Types: deb\nURIs: http://sec.example/debian-security\nSuites: trixie-security\nComponents: main\n\n" +
        "Types: deb\nEnabled: no\nURIs: http://off.example/debian\nSuites: trixie\n\n" +
        "# comment\nTypes: deb deb-src\nURIs: http://main.example/debian/\nSuites: trixie trixie-updates\nComponents: main\n",
      "x.sources",
    );
    expect(deb822.map((s) => s.uris[0])).toEqual([
      "http://sec.example/debian-security",
      "http://main.example/debian/",
    ]);
    const oneLine = parseOneLineSources(
      "# x\ndeb [signed-by=/k.gpg arch=amd64] http://one.example/debian bookworm main\n",
      "l",
    );
    expect(oneLine[0]).toMatchObject({
      uris: ["http://one.example/debian"],
      suites: ["bookworm"],
      components: ["main"],
    });

    const apt = join(dir, "apt");
    await mkdir(join(apt, "sources.list.d"), { recursive: true });
    expect(hostDebianMirror(apt)).toBeUndefined();
    await writeFile(
      join(apt, "sources.list.d", "a.sources"),
      "Types: deb\nURIs: http://sec.example/x\nSuites: trixie-security\n",
    );
    await writeFile(
      join(apt, "sources.list.d", "b.list.disabled"),
      "deb http://no.example/debian trixie main\n",
    );
    await writeFile(join(apt, "sources.list.d", "c.list"), "deb http://yes.example/debian/ trixie main\n");
    expect(hostDebianMirror(apt)).toBe("http://yes.example/debian");
  });
});

describe("dpkg status inventory", () => {
  it("lists installed packages only, sorted", () => {
    const status = [
      "Package: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:1.3.dfsg-3+b1\nDescription: x\n continued",
      "Package: gone\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1",
      "Package: bash\nStatus: install ok installed\nPriority: required\nArchitecture: amd64\nVersion: 5.2.37-2",
      "Package: held\nStatus: hold ok installed\nArchitecture: all\nVersion: 2",
    ].join("\n\n");
    expect(parseDpkgStatus(status)).toEqual([
      { name: "bash", version: "5.2.37-2", arch: "amd64" },
      { name: "held", version: "2", arch: "all" },
      { name: "zlib1g", version: "1:1.3.dfsg-3+b1", arch: "amd64" },
    ]);
  });
});

describe("paths inside a root", () => {
  it("follows symlinks as chroot would and never leaves the root", async () => {
    const root = join(dir, "root");
    const outside = join(dir, "outside");
    await mkdir(join(root, "etc"), { recursive: true });
    await mkdir(outside, { recursive: true });
    await symlink("/", join(root, "up"));
    await symlink("../../../..", join(root, "etc", "dots"));
    await symlink(outside, join(root, "abs"));
    expect(await pathInRoot(root, "/up/etc/passwd")).toBe(join(root, "etc/passwd"));
    expect(await pathInRoot(root, "/etc/dots/etc/x")).toBe(join(root, "etc/x"));
    // An absolute host path in a link is read as a path inside the root.
    expect(await pathInRoot(root, "/abs/file")).toBe(join(root, outside, "file"));
    // A symlink as the last component is replaced, not written through.
    await writeFile(join(outside, "victim"), "keep");
    await symlink(join(outside, "victim"), join(root, "etc", "hostname"));
    await replaceFile(root, "/etc/hostname", "localhost\n");
    expect(await readFile(join(outside, "victim"), "utf8")).toBe("keep");
    expect(await readFile(join(root, "etc/hostname"), "utf8")).toBe("localhost\n");
  });
});
