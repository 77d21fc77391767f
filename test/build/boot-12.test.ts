import { spawnSync } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BuildResult } from "../../builder/build.js";
import { hostDebianMirror } from "../../builder/sources/apt-sources.js";
import { haveTools, isRoot } from "../helpers/require-tool.js";

/**
 * REAL builds of the Debian 12 recipes with `templar build --test` (a file of its own, so that it
 * runs beside boot.test.ts's Debian 13 builds; one package cache for both builds here).
 */
const mirror = process.env.TEMPLAR_DEBIAN_MIRROR ?? hostDebianMirror();
function canRun(): boolean {
  if (!isRoot() || !mirror) {
    const why = !isRoot() ? "booting templates needs root" : "no Debian mirror in the host's apt sources";
    if (process.env.CI === "true") throw new Error(why);
    console.warn(`skipping: ${why}`);
    return false;
  }
  return haveTools("mmdebstrap", "zstd", "unshare", "setpriv", "nsenter", "systemd-nspawn", "ip", "ping");
}
const enabled = canRun();
const CLI = resolve("dist/cli/templar.js");
let work: string;

describe.skipIf(!enabled)("boot test of real Debian 12 templates", () => {
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "templar-boot12-it-"));
    if (spawnSync("test", ["-f", CLI]).status !== 0) spawnSync("npx", ["tsc", "-p", "tsconfig.build.json"]);
  });
  afterAll(() => {
    if (work) spawnSync("rm", ["-rf", "--one-file-system", work]);
  });

  it("12-minimal and 12-standard pass build --test: network, ping; sshd with one ssh-keygen run, D-Bus", () => {
    const r = spawnSync(
      "node",
      [
        CLI,
        "build",
        resolve("recipes/debian/12-minimal.yaml"),
        resolve("recipes/debian/12-standard.yaml"),
        ...["--arch", "x86_64", "--formats", "zst", "--cache", join(work, "cache"), "--mirror", mirror!],
        ...["--out", join(work, "out"), "--test", "--json"],
      ],
      { encoding: "utf8", maxBuffer: 64 << 20 },
    );
    expect(r.status, r.stderr).toBe(0);
    const results = JSON.parse(r.stdout) as BuildResult[];
    const byName = Object.fromEntries(results.map((x) => [x.name, x.test!]));
    const status = (name: string) =>
      Object.fromEntries(byName[name]!.checks.map((c) => [c.name, c.status] as const));
    expect(status("debian-12-x86_64-minimal")).toEqual({
      boot: "ok",
      units: "ok",
      network: "ok",
      ping: "ok",
      sshd: "skipped",
      dbus: "skipped",
      packages: "ok",
    });
    const standard = byName["debian-12-x86_64-standard"]!;
    expect(standard).toMatchObject({ ok: true, os: "Debian GNU/Linux 12 (bookworm)" });
    expect(standard.checks.every((c) => c.status === "ok")).toBe(true);
    expect(standard.checks.find((c) => c.name === "sshd")!.detail).toMatch(
      /host keys made at boot: .*by one ssh-keygen run \(ssh-hostkeys\.service\)$/,
    );
  }, 1_200_000);
});
