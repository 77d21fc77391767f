import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseManifest } from "../../common/manifest.js";
import { haveTools } from "../helpers/require-tool.js";
import { removeDir, runCli, sha256Of, tempDir } from "./helpers.js";

/**
 * `templar pack --formats lxc,incus`: rootfs.tar.xz and the two metadata tarballs, their bytes a
 * function of the manifest's fields (so a rebuild gives the same Incus fingerprint), listed in
 * the manifest. lxc-create and incus read them in test/compat/lxc-incus.test.ts.
 */
const ready = haveTools("xz", "tar", "zstd");
const NAME = "debian-13-aarch64-slim";

describe.skipIf(!ready)("LXC and Incus metadata from the packer", () => {
  let work: string;
  let tree: string;
  const pack = (out: string, formats: string, name = NAME) =>
    runCli([
      ...["pack", tree, "--name", name, "--version", "13.1.0", "--out", out],
      ...["--formats", formats, "--source-date-epoch", "1780000000"],
    ]);

  beforeAll(() => {
    work = tempDir("host-meta");
    tree = join(work, "tree");
    mkdirSync(join(tree, "etc"), { recursive: true });
    writeFileSync(join(tree, "etc", "hostname"), "localhost\n");
  });
  afterAll(() => removeDir(work));

  it("makes tar.xz and both tarballs, identical on a rebuild, listed with the fingerprint", () => {
    const a = pack(join(work, "a"), "zst,lxc,incus");
    expect(a.code, a.stderr).toBe(0);
    const b = pack(join(work, "b"), "incus,lxc,zst");
    expect(b.code, b.stderr).toBe(0);
    const file = (dir: string, f: string) => join(work, dir, `${NAME}-13.1.0.${f}`);
    for (const f of ["lxc-meta.tar.xz", "incus-meta.tar.xz", "tar.xz"]) {
      expect(readFileSync(file("a", f)).equals(readFileSync(file("b", f))), f).toBe(true);
    }
    const manifest = parseManifest(readFileSync(file("a", "manifest.json")));
    expect(manifest.artifacts.map((x) => x.format)).toEqual([
      "tar.zst",
      "tar.xz",
      "lxc-meta.tar.xz",
      "incus-meta.tar.xz",
    ]);
    const incus = manifest.artifacts.find((x) => x.format === "incus-meta.tar.xz")!;
    expect(incus.digest).toBe(`sha256:${sha256Of(readFileSync(file("a", "incus-meta.tar.xz")))}`);
    expect(incus.combinedSha256).toBe(
      sha256Of(
        Buffer.concat([readFileSync(file("a", "incus-meta.tar.xz")), readFileSync(file("a", "tar.xz"))]),
      ),
    );
  });

  it("LXC's meta.tar.xz: sorted, numeric owners, mtime = created; config includes only common.conf", () => {
    const list = execFileSync(
      "tar",
      ["-tvJf", join(work, "a", `${NAME}-13.1.0.lxc-meta.tar.xz`), "--numeric-owner"],
      {
        encoding: "utf8",
      },
    );
    const rows = list.trim().split("\n");
    expect(rows.map((r) => r.split(/\s+/).pop())).toEqual([
      "config",
      "config-user",
      "create-message",
      "expiry",
      "templates",
    ]);
    for (const r of rows) expect(r).toMatch(/^-rw-r--r-- 0\/0 .* 2026-05-28 20:26 /);
    const extract = (member: string) =>
      execFileSync("tar", ["-xOJf", join(work, "a", `${NAME}-13.1.0.lxc-meta.tar.xz`), member], {
        encoding: "utf8",
      });
    expect(extract("config")).toBe(
      "lxc.include = LXC_TEMPLATE_CONFIG/common.conf\nlxc.arch = aarch64\nlxc.signal.halt = SIGRTMIN+3\n",
    );
    expect(extract("config-user")).toContain("lxc.include = LXC_TEMPLATE_CONFIG/userns.conf\n");
    expect(extract("templates")).toBe("/etc/hostname\n/etc/hosts\n");
  });

  it("Incus's metadata.yaml: kernel arch, creation_date from created, properties, templates", () => {
    const tarball = join(work, "a", `${NAME}-13.1.0.incus-meta.tar.xz`);
    const names = execFileSync("tar", ["-tJf", tarball], { encoding: "utf8" }).trim().split("\n");
    expect(names).toEqual(["metadata.yaml", "templates/", "templates/hostname.tpl", "templates/hosts.tpl"]);
    const yaml = execFileSync("tar", ["-xOJf", tarball, "metadata.yaml"], { encoding: "utf8" });
    expect(yaml).toContain('architecture: "aarch64"\ncreation_date: 1780000000\n');
    expect(yaml).toContain('  os: "debian"\n  release: "13"\n  variant: "slim"\n  version: "13.1.0"\n');
    expect(yaml).toContain("  /etc/hostname:\n    when: [create, copy]\n    template: hostname.tpl\n");
  });

  it("an unknown --formats word and a name without a release are clear one-line errors, nothing written", () => {
    const bad = pack(join(work, "c"), "zst,lxd");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--formats: unknown format "lxd" \(known: zst, gz, xz, lxc, incus\)/);
    const noRelease = pack(join(work, "d"), "lxc", "mytemplate");
    expect(noRelease.code).toBe(2);
    expect(noRelease.stderr).toContain("need a distro and release");
    expect(noRelease.stderr).not.toMatch(/\n\s+at /);
    expect(() => readFileSync(join(work, "d", "mytemplate-13.1.0.manifest.json"))).toThrow();
  });
});
