import { spawn, spawnSync } from "node:child_process";
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BuildResult, buildTemplate } from "../../builder/build.js";
import { loadRecipe } from "../../builder/load-recipe.js";
import { hostDebianMirror } from "../../builder/sources/apt-sources.js";
import { UserError } from "../../common/errors.js";
import { parseManifest } from "../../common/manifest.js";
import { generateSigningKey } from "../../common/signing/keys.js";
import { haveTools, isRoot } from "../helpers/require-tool.js";

/**
 * A REAL build of recipes/debian/13-minimal.yaml against the Debian archive named by the host's
 * apt sources (or TEMPLAR_DEBIAN_MIRROR). One package cache serves every build in this file, so
 * only the first build downloads packages.
 */
const mirror = process.env.TEMPLAR_DEBIAN_MIRROR ?? hostDebianMirror();
function canBuild(): boolean {
  if (!isRoot()) {
    if (process.env.CI === "true") throw new Error("real Debian builds need root (CI runs as root)");
    console.warn("skipping: real Debian builds need root");
    return false;
  }
  if (!mirror) {
    if (process.env.CI === "true") throw new Error("no Debian mirror in the host's apt sources");
    console.warn("skipping: no Debian mirror in the host's apt sources");
    return false;
  }
  return haveTools("mmdebstrap", "tar", "zstd", "unshare", "findmnt", "chroot");
}
const enabled = canBuild();
const SDE = 1_790_000_000;
const MINIMAL = resolve("recipes/debian/13-minimal.yaml");
const LONG = 900_000;

let work: string;
let cache: string;
let first: BuildResult;

/** Mounts left under `dir` as the host sees them (our builds use private namespaces). */
function leftoverMounts(dir: string): string[] {
  const out = spawnSync("findmnt", ["-rn", "-o", "TARGET"], { encoding: "utf8" }).stdout;
  return out.split("\n").filter((m) => m.startsWith(dir));
}

async function recipeFor(path: string) {
  const recipes = await loadRecipe(path);
  const x86 = recipes.find((r) => r.arch === "x86_64");
  if (!x86) throw new Error("no x86_64 entry");
  return x86;
}

describe.skipIf(!enabled)("Debian 13 minimal, real build", () => {
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "templar-debian-test-"));
    cache = join(work, "cache");
  });
  afterAll(async () => {
    if (work) spawnSync("rm", ["-rf", "--one-file-system", work]);
  });

  it(
    "builds a container-ready template that GNU tar extracts",
    async () => {
      const out = join(work, "out1");
      first = await buildTemplate(await recipeFor(MINIMAL), {
        outDir: out,
        cacheDir: cache,
        formats: ["tar.zst"],
        mirror,
        sourceDateEpoch: SDE,
      });
      expect(first.name).toBe("debian-13-x86_64-minimal");
      expect(first.fetched!.files).toBeGreaterThan(50);
      const manifest = parseManifest(await readFile(first.manifestPath));
      expect(manifest.created).toBe(new Date(SDE * 1000).toISOString().replace(/\.000Z$/, "Z"));
      expect(manifest).toMatchObject({ distro: "debian", release: "13", arch: "x86_64", flavour: "minimal" });
      expect(manifest.recipe).toMatchObject({ path: "recipes/debian/13-minimal.yaml" });
      expect(manifest.source).toMatchObject({
        method: "debootstrap",
        suite: "trixie",
        mirror,
        pockets: ["updates", "security"],
      });
      // The suite and both update pockets, each with the Release file apt verified.
      const inputs = manifest.source!.inputs!;
      expect(inputs.map((i) => i.uri.replace(/^.*\/dists\//, ""))).toEqual([
        "trixie/InRelease",
        "trixie-updates/InRelease",
        "trixie-security/InRelease",
      ]);
      for (const input of inputs) expect(input.sha256).toMatch(/^[0-9a-f]{64}$/);
      const bash = manifest.packages!.find((p) => p.name === "bash");
      expect(bash).toMatchObject({ arch: "amd64" });
      expect(manifest.packages!.some((p) => p.name === "systemd-sysv")).toBe(true);

      const root = join(work, "extracted");
      await mkdir(root);
      const tar = spawnSync("tar", [
        "--zstd",
        "--numeric-owner",
        "-xpf",
        first.files["tar.zst"]!,
        "-C",
        root,
      ]);
      expect(tar.status, tar.stderr?.toString()).toBe(0);
      const text = (p: string) => readFile(join(root, p), "utf8");
      // The container keeps getting security fixes: its apt sources list the pockets too.
      expect(await text("etc/apt/sources.list")).toMatch(/^deb \S+ trixie-security main$/m);

      const ssh = await readdir(join(root, "etc/ssh")).catch(() => [] as string[]);
      expect(ssh.filter((n) => n.startsWith("ssh_host_"))).toEqual([]);
      expect(await text("etc/machine-id")).toBe("");
      expect(await text("etc/hostname")).toBe("localhost\n");
      expect(await text("etc/resolv.conf")).toBe("");
      expect(
        (await text("etc/hosts"))
          .split("\n")
          .filter(Boolean)
          .every((l) => /\blocalhost\b/.test(l)),
      ).toBe(true);
      expect(await text("etc/fstab")).toBe("");
      expect(await readlink(join(root, "etc/mtab"))).toBe("/proc/mounts");
      expect(await readlink(join(root, "etc/localtime"))).toBe("/usr/share/zoneinfo/Etc/UTC");
      expect(await text("etc/shadow")).toMatch(/^root:!/m);
      expect(await text("etc/network/interfaces")).toMatch(/^iface lo inet loopback$/m);
      // No getty on tty1-6: none wanted by getty.target, each instance masked; the console stays.
      const wants = await readdir(join(root, "etc/systemd/system/getty.target.wants")).catch(
        () => [] as string[],
      );
      expect(wants.filter((n) => /^getty@tty[1-6]/.test(n))).toEqual([]);
      for (let n = 1; n <= 6; n++) {
        expect(await readlink(join(root, `etc/systemd/system/getty@tty${n}.service`))).toBe("/dev/null");
      }
      expect(await readlink(join(root, "etc/systemd/system/systemd-udevd.service"))).toBe("/dev/null");
      expect(
        await lstat(join(root, "etc/systemd/system/console-getty.service")).catch(() => null),
      ).toBeNull();
      // Package caches and logs.
      expect((await readdir(join(root, "var/cache/apt/archives"))).filter((n) => n.endsWith(".deb"))).toEqual(
        [],
      );
      expect(
        (await readdir(join(root, "var/lib/apt/lists"))).filter((n) => n !== "partial" && n !== "lock"),
      ).toEqual([]);
      const du = spawnSync("find", [join(root, "var/log"), "-type", "f", "-size", "+0"], {
        encoding: "utf8",
      });
      expect(du.stdout.trim()).toBe("");
      // The root runs programs.
      for (const argv of [
        ["apt-get", "--version"],
        ["/bin/sh", "-c", "true"],
      ]) {
        const r = spawnSync("unshare", ["--mount", "--pid", "--fork", "chroot", root, ...argv], {
          encoding: "utf8",
        });
        expect(r.status, `${argv.join(" ")}: ${r.stderr}`).toBe(0);
      }
    },
    LONG,
  );

  it(
    "rebuilds with the same SOURCE_DATE_EPOCH to the same tar, downloading nothing from the cache",
    async () => {
      expect(first, "first build failed").toBeDefined();
      const debs = async () =>
        (await readdir(join(cache, "debian/archives"))).filter((n) => n.endsWith(".deb")).length;
      const cached = await debs();
      // The first build left a root snapshot; this rebuild runs mmdebstrap again regardless.
      expect((await readdir(join(cache, "rootfs"))).filter((n) => n.endsWith(".tar"))).toHaveLength(1);
      const second = await buildTemplate(await recipeFor(MINIMAL), {
        outDir: join(work, "out2"),
        cacheDir: cache,
        formats: ["tar.zst"],
        mirror,
        sourceDateEpoch: SDE,
        snapshots: false,
      });
      expect(second.fetched).toEqual({ files: 0, bytes: 0 });
      expect(await debs()).toBe(cached);
      expect(second.tarSha256).toBe(first.tarSha256);
      const manifest = parseManifest(await readFile(second.manifestPath));
      expect(manifest.source!.inputs).toEqual(
        parseManifest(await readFile(first.manifestPath)).source!.inputs,
      );
    },
    LONG,
  );

  it(
    "a packages step installs with apt; a failing run step leaves no mounts, no build directory and no output",
    async () => {
      const dir = join(work, "failing");
      await mkdir(dir);
      await writeFile(
        join(dir, "fail.yaml"),
        `extends: ${MINIMAL}\nflavour: failing\nsteps:\n  - packages: { install: [less] }\n  - run: |\n      mount | grep -q " /proc " && test -c /dev/null && command -v less\n      exit 3\n`,
      );
      const out = join(work, "out-fail");
      const workParent = join(work, "builds");
      await mkdir(workParent);
      const err = await buildTemplate(await recipeFor(join(dir, "fail.yaml")), {
        outDir: out,
        cacheDir: cache,
        mirror,
        sourceDateEpoch: SDE,
        workParent,
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UserError);
      expect((err as Error).message).toMatch(/^run step at \S+fail\.yaml:5:5 failed \(exit 3\)/);
      // The packages step ran apt inside the root and left what it fetched in the shared cache.
      expect((await readdir(join(cache, "debian/archives"))).some((n) => /^less_.*\.deb$/.test(n))).toBe(
        true,
      );
      expect(leftoverMounts(workParent)).toEqual([]);
      expect(await readdir(out)).toEqual([]);
      expect(await readdir(workParent)).toEqual([]);
    },
    LONG,
  );

  it(
    "templar build --sign-key signs the manifest and the artifact; gpg verifies both",
    async () => {
      const cli = resolve("dist/cli/templar.js");
      if (spawnSync("test", ["-f", cli]).status !== 0) spawnSync("npx", ["tsc", "-p", "tsconfig.build.json"]);
      const key = await generateSigningKey({ name: "Build Test" });
      await writeFile(join(work, "build.key.asc"), key.privateKeyArmored);
      await writeFile(join(work, "build.pub.asc"), key.publicKeyArmored);
      const out = join(work, "out-signed");
      const args = [cli, "build", MINIMAL, "--arch", "x86_64", "--cache", cache, "--mirror", mirror!];
      const build = spawnSync(
        "node",
        [...args, "--formats", "zst", "--source-date-epoch", String(SDE), "--out", out],
        { encoding: "utf8", env: { ...process.env, TEMPLAR_SIGN_KEY: join(work, "build.key.asc") } },
      );
      expect(build.status, build.stderr).toBe(0);
      const files = (await readdir(out)).sort();
      // version: auto: trixie's point release from the root's /etc/debian_version, serial 0 in an
      // empty output directory.
      const version = /^debian-13-x86_64-minimal-(13\.\d+\.0)\.manifest\.json$/.exec(files[0] ?? "")?.[1];
      expect(version, files.join(", ")).toBeDefined();
      expect(files).toEqual([
        `debian-13-x86_64-minimal-${version}.manifest.json`,
        `debian-13-x86_64-minimal-${version}.manifest.json.asc`,
        `debian-13-x86_64-minimal-${version}.tar.zst`,
        `debian-13-x86_64-minimal-${version}.tar.zst.asc`,
      ]);
      const home = join(work, "gnupg");
      await mkdir(home, { mode: 0o700 });
      const gpg = (...a: string[]) =>
        spawnSync("gpg", ["--homedir", home, "--batch", ...a], { encoding: "utf8" });
      expect(gpg("--import", join(work, "build.pub.asc")).status).toBe(0);
      for (const file of ["manifest.json", "tar.zst"]) {
        const path = join(out, `debian-13-x86_64-minimal-${version}.${file}`);
        const verify = gpg("--verify", `${path}.asc`, path);
        expect(verify.status, verify.stderr).toBe(0);
      }

      // A protected key without its passphrase stops the build before it starts.
      const locked = await generateSigningKey({ name: "Locked" }, "secret");
      await writeFile(join(work, "locked.key.asc"), locked.privateKeyArmored);
      const refused = spawnSync(
        "node",
        [...args, "--out", join(work, "out-locked"), "--sign-key", join(work, "locked.key.asc")],
        {
          encoding: "utf8",
        },
      );
      expect(refused.status).toBe(1);
      expect(refused.stderr).toMatch(/^templar: signing key \S+locked\.key\.asc is protected/);
      expect(await readdir(join(work, "out-locked")).catch(() => [])).toEqual([]);
    },
    LONG,
  );

  it(
    "Ctrl-C during the source stage leaves no mounts, no build directory and no output",
    async () => {
      const cli = resolve("dist/cli/templar.js");
      if (spawnSync("test", ["-f", cli]).status !== 0) spawnSync("npx", ["tsc", "-p", "tsconfig.build.json"]);
      const tmp = join(work, "tmp-int");
      const out = join(work, "out-int");
      await mkdir(tmp);
      const child = spawn(
        "node",
        [
          cli,
          "build",
          MINIMAL,
          "--arch",
          "x86_64",
          "--no-snapshot",
          "--cache",
          cache,
          "--mirror",
          mirror!,
          "--out",
          out,
        ],
        { env: { ...process.env, TMPDIR: tmp }, stdio: ["ignore", "ignore", "pipe"] },
      );
      let stderr = "";
      child.stderr.on("data", (c: Buffer) => {
        stderr += c.toString();
      });
      const exited = new Promise<number | null>((done) => child.on("close", (code) => done(code)));
      // Wait until the root is being filled (packages being installed), then interrupt.
      const deadline = Date.now() + 120_000;
      for (;;) {
        const dirs = (await readdir(tmp)).filter((n) => n.startsWith("templar-build-"));
        const filling =
          dirs.length > 0 && (await lstat(join(tmp, dirs[0]!, "rootfs/var/lib/dpkg")).catch(() => null));
        if (filling || Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      child.kill("SIGINT");
      expect(await exited, stderr).toBe(130);
      expect(stderr).toMatch(/templar: interrupted/);
      expect(leftoverMounts(tmp)).toEqual([]);
      expect((await readdir(tmp)).filter((n) => n.startsWith("templar-build-"))).toEqual([]);
      expect(await readdir(out).catch(() => [])).toEqual([]);
    },
    LONG,
  );

  it(
    "builds with debootstrap too, updating from the pockets afterwards to what mmdebstrap installs",
    async () => {
      {
        const built = await buildTemplate(await recipeFor(MINIMAL), {
          outDir: join(work, "out-debootstrap"),
          cacheDir: cache,
          formats: ["tar.zst"],
          mirror,
          sourceDateEpoch: SDE,
          bootstrapTool: "debootstrap",
        });
        const manifest = parseManifest(await readFile(built.manifestPath));
        expect(manifest.source).toMatchObject({ method: "debootstrap", pockets: ["updates", "security"] });
        expect(String(manifest.source!.tool)).toMatch(/^debootstrap/);
        // apt in the root read all three suites, each verified against the recipe's keyring.
        expect(manifest.source!.inputs!.map((i) => i.uri.replace(/^.*\/dists\//, ""))).toEqual([
          "trixie/InRelease",
          "trixie-updates/InRelease",
          "trixie-security/InRelease",
        ]);
        // Every package both tools installed has the same version: the pockets' newer ones won.
        const mm = new Map(
          parseManifest(await readFile(first.manifestPath)).packages!.map((p) => [p.name, p.version]),
        );
        const both = manifest.packages!.filter((p) => mm.has(p.name));
        expect(both.length).toBeGreaterThan(50);
        expect(both.filter((p) => mm.get(p.name) !== p.version)).toEqual([]);
        const root = join(work, "extracted-debootstrap");
        await mkdir(root);
        const tar = spawnSync("tar", ["--zstd", "-xpf", built.files["tar.zst"]!, "-C", root, "./etc/apt"]);
        expect(tar.status, tar.stderr?.toString()).toBe(0);
        const sources = await readFile(join(root, "etc/apt/sources.list"), "utf8");
        expect(sources).toMatch(/^deb \S+ trixie-security main$/m);
        expect(sources).not.toContain("signed-by"); // the build's temporary trust stays out
        const members = spawnSync("tar", ["--zstd", "-tf", built.files["tar.zst"]!], { encoding: "utf8" });
        expect(members.stdout.split("\n").filter((m) => /templar-(sources|archive-keyring)/.test(m))).toEqual(
          [],
        );
        expect(leftoverMounts(work)).toEqual([]);
      }
    },
    LONG,
  );

  it("says clearly when no mirror is configured, naming the recipe's source", async () => {
    const emptyApt = join(work, "apt");
    await mkdir(emptyApt, { recursive: true });
    const err = await buildTemplate(await recipeFor(MINIMAL), {
      outDir: join(work, "out-nomirror"),
      cacheDir: cache,
      aptDir: emptyApt,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(
      /^recipes\/debian\/13-minimal\.yaml:17:3: source: no Debian mirror found: pass --mirror URL, set TEMPLAR_DEBIAN_MIRROR/,
    );
    expect(await readdir(join(work, "out-nomirror"))).toEqual([]);
  });
});

describe("templar CLI on recipes", () => {
  const cli = resolve("dist/cli/templar.js");
  beforeAll(() => {
    // `npm test` builds dist/ first; a lone `vitest run` may not have.
    if (spawnSync("test", ["-f", cli]).status !== 0) spawnSync("npx", ["tsc", "-p", "tsconfig.build.json"]);
  });

  it("lint prints one line per bad recipe and exits 1", async () => {
    const dir = await mkdtemp(join(tmpdir(), "templar-lint-"));
    try {
      await writeFile(
        join(dir, "bad.yaml"),
        "version: 1.0.0\ndistro: debian\nrelease: 13\narch: x86_64\nsource: {method: debootstrap}\n",
      );
      const bad = spawnSync("node", [cli, "recipe", "lint", join(dir, "bad.yaml")], { encoding: "utf8" });
      expect(bad.status).toBe(1);
      expect(bad.stderr.trim().split("\n")).toHaveLength(1);
      expect(bad.stderr).toMatch(/bad\.yaml:5:9: source: missing required key "suite"/);
      const good = spawnSync("node", [cli, "recipe", "lint", "recipes/debian/13-minimal.yaml"], {
        encoding: "utf8",
      });
      expect(good.status, good.stderr).toBe(0);
      expect(good.stdout).toContain("debian-13-x86_64-minimal@auto"); // decided by the build
      const usage = spawnSync("node", [cli, "build", "recipes/debian/13-minimal.yaml", "--formats", "rar"], {
        encoding: "utf8",
      });
      expect(usage.status).toBe(2);
      expect(usage.stderr).toMatch(/--formats: unknown format "rar"/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
