import { spawnSync } from "node:child_process";
import { mkdir, readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { haveTools } from "../helpers/require-tool.js";
import {
  type CompatRegistry,
  generateKey,
  type Keys,
  packRootfs,
  pullSigned,
  push,
  startCompatRegistry,
} from "./fixture.js";

/**
 * A pulled template extracts the way the hosts extract it: vzctl decompresses by
 * magic and runs `tar --numeric-owner -Sp -x`; pct lists the archive first (it needs `sbin` and
 * at least 10 members), then extracts with `--numeric-owner --acls --xattrs
 * --xattrs-include=security.capability --exclude=./dev/*`.
 */
const ready = haveTools("tar", "gzip", "zstd");

function run(cmd: string, args: string[]) {
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

describe.skipIf(!ready)("hosts extract what templar pull writes", () => {
  let reg: CompatRegistry;
  let maintainer: Keys;
  const name = "debian-13-x86_64-extract";

  beforeAll(async () => {
    reg = await startCompatRegistry();
    maintainer = await generateKey(join(reg.dir, "maintainer"), "Extract Maintainer");
    const p = await packRootfs(reg.dir, name, "13.1.0", { signKey: maintainer.secret, epoch: 1_780_000_000 });
    await push(reg, p.outDir);
  }, 60_000);
  afterAll(async () => reg?.close());

  it("OpenVZ: vzctl's decompress + tar --numeric-owner -Sp -x", async () => {
    const cache = join(reg.dir, "vz-cache");
    const r = await pullSigned(reg.url, name, cache, maintainer.public);
    expect(r.code, r.stderr).toBe(0);
    const file = join(cache, `${name}.tar.gz`);
    // vzctl picks the decompressor by magic bytes: gzip is 1f 8b.
    expect([...(await readFile(file)).subarray(0, 2)]).toEqual([0x1f, 0x8b]);
    const privateDir = join(reg.dir, "private", "101.tmp");
    await mkdir(privateDir, { recursive: true });
    const tarFile = join(reg.dir, "101.tar");
    run("sh", ["-c", `gzip -dc '${file}' > '${tarFile}'`]);
    run("tar", ["--numeric-owner", "-Sp", "-x", "-C", privateDir, "-f", tarFile]);
    expect(await readFile(join(privateDir, "etc/os-release"), "utf8")).toMatch(/^ID=debian/m);
    expect((await stat(join(privateDir, "sbin/init"))).mode & 0o777).toBe(0o755);
    expect((await stat(join(privateDir, "tmp"))).mode & 0o7777).toBe(0o1777);
    expect((await stat(join(privateDir, "sbin/init"))).uid).toBe(0);
  });

  it("Proxmox: pct's listing checks and its tar command on the tar.zst", async () => {
    const cache = join(reg.dir, "pve-cache");
    const r = await pullSigned(reg.url, name, cache, maintainer.public, "--proxmox");
    expect(r.code, r.stderr).toBe(0);
    const file = join(cache, `${name}_13.1.0_amd64.tar.zst`);
    // pct: list the archive; it must contain sbin and at least 10 members.
    const listing = run("tar", ["-tf", file, "--zstd"]).split("\n").filter(Boolean);
    expect(listing.length).toBeGreaterThanOrEqual(10);
    expect(listing.some((m) => /^(\.\/)?sbin\/?$/.test(m))).toBe(true);
    const rootfs = join(reg.dir, "pve-rootfs");
    await mkdir(rootfs, { recursive: true });
    run("tar", [
      "-xpf",
      file,
      "--zstd",
      "--totals",
      "--one-file-system",
      "--numeric-owner",
      "--acls",
      "--xattrs",
      "--xattrs-include=user.*",
      "--xattrs-include=security.capability",
      "--warning=no-file-ignored",
      "--warning=no-xattr-write",
      "-C",
      rootfs,
      "--skip-old-files",
      "--anchored",
      "--exclude",
      "./dev/*",
    ]);
    expect(await readFile(join(rootfs, "etc/os-release"), "utf8")).toMatch(/^ID=debian/m);
    expect(await readdir(join(rootfs, "dev"))).toEqual([]); // excluded, as pct does
    expect(await readFile(join(rootfs, "bin/hello"), "utf8")).toContain(name);
  });
});
