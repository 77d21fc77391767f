import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runProcess, TEMPLAR } from "../helpers/registry-process.js";

/** templar with a PATH that holds only node: a machine where nothing else is installed. */
describe("templar doctor and the check at the start of pack, build and test", () => {
  let dir: string;
  let bare: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "templar-doctor-"));
    bare = join(dir, "bin");
    await mkdir(bare);
    await symlink(process.execPath, join(bare, "node"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const run = (args: string[]) =>
    runProcess(process.execPath, [TEMPLAR, ...args], { ...process.env, PATH: bare });

  it("doctor names every missing program with its Debian package, per command", async () => {
    const r = await run(["doctor"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(
      /templar pack: cannot run yet\n\s+missing\s+getfattr not found \(Debian: apt install attr\)/,
    );
    expect(r.stdout).toMatch(/optional\s+zstd not found \(Debian: apt install zstd\)/);
    expect(r.stdout).toMatch(/templar build: cannot run yet/);
    expect(r.stdout).toMatch(/mmdebstrap \(or debootstrap\) not found \(Debian: apt install mmdebstrap\)/);
    expect(r.stdout).toMatch(/gpgv not found \(Debian: apt install gpgv\)/);
    expect(r.stdout).toMatch(/systemd-nspawn not found \(Debian: apt install systemd-container\)/);
    expect(r.stdout).toMatch(/Install what is missing: apt install .*attr/);
    const json = JSON.parse((await run(["doctor", "pack", "--json"])).stdout) as Record<
      string,
      { missing: string[] }[]
    >;
    expect(Object.keys(json)).toEqual(["pack"]);
    expect(json.pack!.flatMap((f) => f.missing)).toContain("getfattr");
    expect((await run(["doctor", "nonsense"])).code).toBe(2);
  });

  it("doctor on this machine (with the tools installed) says ready", async () => {
    const r = await runProcess(process.execPath, [TEMPLAR, "doctor", "pack"]);
    expect(r.stdout).toContain("templar pack: ready");
    expect(r.code).toBe(0);
  });

  it("pack without getfattr stops at once, before writing anything", async () => {
    const out = join(dir, "out");
    const t0 = Date.now();
    const r = await run(["pack", dir, "--name", "doc-1-x86_64-x", "--version", "1.0.0", "--out", out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/getfattr not found \(Debian: apt install attr\)/);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(existsSync(out)).toBe(false);
  });

  it("build as a user other than root says it needs root before starting", async () => {
    if (process.getuid?.() !== 0 || spawnSync("sh", ["-c", "command -v setpriv"]).status !== 0) {
      if (process.env.CI === "true") throw new Error("this test needs root and setpriv");
      console.log("skipped: needs root (to become another user) and setpriv");
      return;
    }
    const out = join(dir, "build-out");
    const recipe = resolve(import.meta.dirname, "../../recipes/debian/13-minimal.yaml");
    const r = await runProcess("setpriv", [
      "--reuid=65534",
      "--regid=65534",
      "--clear-groups",
      process.execPath,
      TEMPLAR,
      "build",
      recipe,
      "--arch",
      "x86_64",
      "--out",
      out,
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/needs root: bootstrapping, chroot and mounts need root/);
    expect(r.stderr).not.toMatch(/unshare failed/);
    expect(existsSync(out)).toBe(false);
  });
});
