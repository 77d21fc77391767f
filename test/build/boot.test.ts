import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BootTestReport } from "../../builder/boot-test/boot-test.js";
import type { BuildResult } from "../../builder/build.js";
import { hostDebianMirror } from "../../builder/sources/apt-sources.js";
import { haveTools, isRoot } from "../helpers/require-tool.js";

/**
 * REAL builds of recipes/debian/13-minimal.yaml and 13-standard.yaml with `templar build --test`:
 * each template boots in a throwaway systemd-nspawn container (root, the host's Debian mirror,
 * one package cache for this file), then `templar test` on the output and on broken templates.
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
const MINIMAL = resolve("recipes/debian/13-minimal.yaml");
const STANDARD = resolve("recipes/debian/13-standard.yaml");
const LONG = 900_000;

let work: string;
let tmp: string;
const built: Record<string, { result: BuildResult; out: string }> = {};

function templar(args: string[]) {
  return spawnSync("node", [CLI, ...args], {
    encoding: "utf8",
    // Boot tests make their throwaway directories here: the test checks none is left.
    env: { ...process.env, TMPDIR: tmp },
    maxBuffer: 64 << 20,
  });
}

function build(recipe: string, out: string, ...more: string[]) {
  return templar([
    "build",
    recipe,
    "--arch",
    "x86_64",
    "--formats",
    "zst",
    "--cache",
    join(work, "cache"),
    "--mirror",
    mirror!,
    "--out",
    out,
    "--source-date-epoch",
    "1790000000",
    ...more,
  ]);
}

const check = (report: BootTestReport, name: string) => report.checks.find((c) => c.name === name)!;

/** What the boot tests must never leave: directories, veth links, containers. */
async function expectNothingLeft(): Promise<void> {
  expect((await readdir(tmp)).filter((n) => n.startsWith("templar-boot-test-"))).toEqual([]);
  const links = spawnSync("ip", ["-o", "link", "show"], { encoding: "utf8" }).stdout;
  expect(links.split("\n").filter((l) => /: ve-tt[0-9a-f]{8}[@:]/.test(l))).toEqual([]);
  expect(spawnSync("pgrep", ["-f", "systemd-nspawn .*--machine=templar-test-"]).status).toBe(1);
}

describe.skipIf(!enabled)("boot test of real Debian 13 templates", () => {
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "templar-boot-it-"));
    tmp = join(work, "tmp");
    await mkdir(tmp);
    if (spawnSync("test", ["-f", CLI]).status !== 0) spawnSync("npx", ["tsc", "-p", "tsconfig.build.json"]);
  });
  afterAll(() => {
    if (work) spawnSync("rm", ["-rf", "--one-file-system", work]);
  });

  it(
    "build --test: minimal boots to running with no failed unit, gets its static address, answers ping",
    async () => {
      const out = join(work, "out-minimal");
      const r = build(MINIMAL, out, "--test", "--json");
      expect(r.status, r.stderr).toBe(0);
      const [result] = JSON.parse(r.stdout) as BuildResult[];
      built.minimal = { result: result!, out };
      const report = result!.test!;
      expect(report).toMatchObject({ ok: true, family: "debian", init: "systemd", failed: [] });
      expect(report.network).toBe("/etc/network/interfaces (ifupdown)");
      expect(check(report, "boot").detail).toMatch(/^systemd: running after [\d.]+ s$/);
      expect(check(report, "units")).toMatchObject({ status: "ok", detail: "no failed units" });
      expect(check(report, "network").detail).toMatch(
        /^eth0 has 198\.1[89]\.\d+\.2\/24, default via 198\.1[89]\.\d+\.1 /,
      );
      expect(check(report, "ping")).toMatchObject({ status: "ok" });
      expect(check(report, "sshd")).toMatchObject({ status: "skipped", detail: "the template has no sshd" });
      expect(check(report, "packages")).toMatchObject({ status: "ok" });
      // The template itself does not start a second network manager at first boot.
      const preset = spawnSync(
        "tar",
        ["--zstd", "-xOf", result!.files["tar.zst"]!, "./etc/systemd/system-preset/00-templar.preset"],
        { encoding: "utf8" },
      );
      expect(preset.stdout).toMatch(/^disable systemd-networkd\.service$/m);
      await expectNothingLeft();
    },
    LONG,
  );

  it(
    "build --test: standard also answers on port 22 with host keys made at boot by ONE ssh-keygen run, and D-Bus",
    async () => {
      const out = join(work, "out-standard");
      const r = build(STANDARD, out, "--test");
      expect(r.status, r.stderr).toBe(0);
      // The check lines come before the output's paths: the test ran before the output appeared.
      const lines = r.stderr.split("\n");
      const passed = lines.findIndex((l) =>
        /^debian-13-x86_64-standard-13\.\d+\.0: boot test passed: 7 checks in /.test(l),
      );
      const artifact = lines.findIndex((l) => /\/debian-13-x86_64-standard-13\.\d+\.0\.tar\.zst$/.test(l));
      expect(passed, r.stderr).toBeGreaterThan(0);
      expect(artifact).toBeGreaterThan(passed);
      for (const name of ["boot", "units", "network", "ping", "sshd", "dbus", "packages"])
        expect(
          lines.some((l) => new RegExp(`^  ok +${name} `).test(l)),
          `${name}: ${r.stderr}`,
        ).toBe(true);
      expect(r.stderr).toMatch(
        /^ {2}ok +sshd +port 22 answers \(SSH-2\.0-OpenSSH_\S+ Debian\S*\); host keys made at boot: ecdsa, ed25519, rsa, by one ssh-keygen run \(ssh-hostkeys\.service\)$/m,
      );
      expect(r.stderr).toMatch(/^ {2}ok +dbus +hostnamectl, timedatectl and loginctl answer over D-Bus$/m);
      built.standard = { result: {} as BuildResult, out };
      await expectNothingLeft();
    },
    LONG,
  );

  it(
    "templar test on an out/ directory and a template file, --json; the file is unchanged",
    async () => {
      expect(built.minimal && built.standard, "the builds above failed").toBeTruthy();
      // version: auto: trixie's point release and serial 0 (an empty output directory).
      const name = (await readdir(built.standard!.out)).find((f) => f.endsWith(".tar.zst"))!;
      expect(name).toMatch(/^debian-13-x86_64-standard-13\.\d+\.0\.tar\.zst$/);
      const file = join(built.standard!.out, name);
      const before = spawnSync("sha256sum", [file], { encoding: "utf8" }).stdout;
      const r = templar(["test", built.minimal!.out, file, "--json"]);
      expect(r.status, r.stderr).toBe(0);
      const reports = JSON.parse(r.stdout) as BootTestReport[];
      expect(reports.map((x) => [x.template, x.ok])).toEqual([
        [expect.stringMatching(/^debian-13-x86_64-minimal-13\.\d+\.0$/), true],
        [name, true],
      ]);
      expect(check(reports[1]!, "sshd").detail).toMatch(/by one ssh-keygen run/);
      expect(spawnSync("sha256sum", [file], { encoding: "utf8" }).stdout).toBe(before);
      // Plain output: one line per check, then the verdict.
      const plain = templar(["test", file]);
      expect(plain.status, plain.stderr).toBe(0);
      const out = plain.stdout.trim().split("\n");
      expect(out).toHaveLength(9);
      expect(out[0]).toMatch(
        /^debian-13-x86_64-standard-13\.\d+\.0\.tar\.zst: Debian GNU\/Linux 13 \(trixie\), systemd, eth0 /,
      );
      expect(out.slice(1, 8).map((l) => l.trim().split(/\s+/).slice(0, 2).join(" "))).toEqual([
        "ok boot",
        "ok units",
        "ok network",
        "ok ping",
        "ok sshd",
        "ok dbus",
        "ok packages",
      ]);
      await expectNothingLeft();
    },
    LONG,
  );

  it(
    "templar test fails naming the check: a unit that fails at boot, a template without ifup; the root is unchanged",
    async () => {
      expect(built.minimal, "the minimal build failed").toBeTruthy();
      const rootfs = async (name: string) => {
        const root = join(work, name);
        await mkdir(root);
        const x = spawnSync("tar", ["--zstd", "-xpf", built.minimal!.result.files["tar.zst"]!, "-C", root]);
        expect(x.status, x.stderr?.toString()).toBe(0);
        return root;
      };
      const brokenUnit = await rootfs("root-broken-unit");
      await writeFile(
        join(brokenUnit, "etc/systemd/system/templar-broken.service"),
        "[Unit]\nDescription=fails at boot\n[Service]\nType=oneshot\nExecStart=/bin/false\n",
      );
      spawnSync("ln", [
        "-s",
        "/etc/systemd/system/templar-broken.service",
        join(brokenUnit, "etc/systemd/system/multi-user.target.wants/templar-broken.service"),
      ]);
      const unit = templar(["test", brokenUnit]);
      expect(unit.status).toBe(1);
      expect(unit.stdout).toMatch(/^ {2}FAILED +units +1 failed: templar-broken\.service/m);
      expect(unit.stderr.trim().split("\n").at(-1)).toMatch(
        /^templar: \S+root-broken-unit: boot test failed: units: 1 failed: templar-broken\.service/,
      );

      const noIfup = await rootfs("root-no-ifup");
      spawnSync("rm", ["-f", join(noIfup, "usr/sbin/ifup")]);
      const interfaces = await readFile(join(noIfup, "etc/network/interfaces"), "utf8");
      const ifup = templar(["test", noIfup, "--json"]);
      expect(ifup.status).toBe(1);
      const [report] = JSON.parse(ifup.stdout) as BootTestReport[];
      // networking.service fails (ifup is not there) and eth0 stays down: both are named.
      expect(report!.failed).toEqual(["units", "network", "ping"]);
      expect(check(report!, "units").detail).toMatch(
        /^1 failed: networking\.service \(networking\.service: /,
      );
      expect(check(report!, "network").detail).toMatch(/the template has no ifup \(ifupdown\)/);
      expect(ifup.stderr).toMatch(
        /^templar: \S+root-no-ifup: boot test failed: units: 1 failed: networking\.service .*; network: eth0 did not get .*; ping: /m,
      );
      // The directory was copied, not booted: the host's edits and the boot's traces are not in it.
      expect(await readFile(join(noIfup, "etc/network/interfaces"), "utf8")).toBe(interfaces);
      expect(await readFile(join(noIfup, "etc/machine-id"), "utf8")).toBe("");
      expect((await readdir(join(noIfup, "var/log/journal")).catch(() => [])).length).toBe(0);
      await expectNothingLeft();
    },
    LONG,
  );

  it(
    "build --test of a broken recipe fails naming the check and leaves no output",
    async () => {
      const recipes = join(work, "recipes");
      await mkdir(recipes);
      const unitRecipe = join(recipes, "broken-unit.yaml");
      await writeFile(
        unitRecipe,
        `extends: ${MINIMAL}\nflavour: broken\nsteps:\n  - file:\n      path: /etc/systemd/system/templar-broken.service\n      content: "[Unit]\\nDescription=fails at boot\\n[Service]\\nType=oneshot\\nExecStart=/bin/false\\n[Install]\\nWantedBy=multi-user.target\\n"\n  - run: systemctl enable templar-broken.service\n`,
      );
      const ifupRecipe = join(recipes, "no-ifup.yaml");
      await writeFile(
        ifupRecipe,
        `extends: ${MINIMAL}\nflavour: noifup\nsteps:\n  - run: rm /usr/sbin/ifup\n`,
      );
      for (const [recipe, name, failing] of [
        [unitRecipe, "broken", /boot test failed: units: 1 failed: templar-broken\.service/],
        [
          ifupRecipe,
          "noifup",
          /boot test failed: units: 1 failed: networking\.service .*; network: eth0 did not get \S+ from \/etc\/network\/interfaces \(ifupdown\) after [\d.]+ s: the template has no ifup/,
        ],
      ] as const) {
        const out = join(work, `out-${name}`);
        const r = build(recipe, out, "--test");
        expect(r.status, r.stderr).toBe(1);
        const last = r.stderr.trim().split("\n").at(-1)!;
        expect(last).toMatch(new RegExp(`^templar: \\S+\\.yaml: debian-13-x86_64-${name}: `));
        expect(last).toMatch(failing);
        expect(await readdir(out)).toEqual([]);
      }
      expect((await readdir(tmp)).filter((n) => n.startsWith("templar-build-"))).toEqual([]);
      await expectNothingLeft();
    },
    LONG,
  );
});
