import { spawnSync } from "node:child_process";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseManifest } from "../../common/manifest.js";
import { type FixtureServer, serveDirectory } from "../fixtures/http-server.js";
import { makeUpstreams, type Upstreams } from "../fixtures/upstreams.js";
import { haveTools } from "../helpers/require-tool.js";
import { CLI, overrideRecipe as override, templar } from "./templar-build.js";

/** End to end through `templar build` with the REAL recipes (see overrideRecipe). */
const tools = haveTools("tar", "xz", "gzip", "zstd", "rpm", "rpmbuild") && existsSync(CLI);
if (!existsSync(CLI) && process.env.CI === "true")
  throw new Error("dist/ is missing: run npm run build first");
const dir = mkdtempSync(join(tmpdir(), "templar-archive-e2e-"));
let up: Upstreams;
let server: FixtureServer;
const overrideRecipe = (real: string, base: string, key?: { fingerprint: string; url: string }) =>
  override(dir, real, base, key);

beforeAll(async () => {
  if (!tools) return;
  up = await makeUpstreams(join(dir, "www"));
  server = await serveDirectory(up.dir);
});
afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** `templar build` of one recipe for x86_64 into `out`, with the shared package cache. */
function templarBuild(recipe: string, out: string, ...more: string[]) {
  return templar(["build", recipe, "--arch", "x86_64", "--out", out, "--cache", join(dir, "cache"), ...more]);
}

async function build(recipe: string, out: string) {
  const r = await templarBuild(recipe, out, "--formats", "zst");
  if (r.status !== 0) throw new Error(`templar build failed (${r.status}): ${r.stderr}`);
  const manifestPath = spawnSync("sh", ["-c", `ls ${out}/*.manifest.json`], {
    encoding: "utf8",
  }).stdout.trim();
  const manifest = parseManifest(readFileSync(manifestPath), manifestPath);
  const artifact = manifestPath.replace(/\.manifest\.json$/, ".tar.zst");
  const rootfs = join(out, "rootfs");
  mkdirSync(rootfs);
  const x = spawnSync("tar", ["--zstd", "--numeric-owner", "-xpf", artifact, "-C", rootfs], {
    encoding: "utf8",
  });
  expect(x.status, x.stderr).toBe(0);
  return { manifest, rootfs };
}

function expectContainerReady(rootfs: string) {
  expect(readFileSync(join(rootfs, "etc/hostname"), "utf8")).toBe("localhost\n");
  expect(readFileSync(join(rootfs, "etc/machine-id"), "utf8")).toBe("");
  expect(existsSync(join(rootfs, "etc/ssh/ssh_host_ed25519_key"))).toBe(false);
  expect(readFileSync(join(rootfs, "etc/shadow"), "utf8")).toMatch(/^root:!/);
  expect(existsSync(join(rootfs, "root/.bash_history"))).toBe(false);
  expect(readFileSync(join(rootfs, "var/log/messages"), "utf8")).toBe("");
}

describe.skipIf(!tools)("templar build from verified upstream root filesystems", () => {
  it("Fedora 43: OCI image, clearsigned CHECKSUM, rpm inventory, RHEL preset", async () => {
    const recipe = overrideRecipe(
      "recipes/fedora/43.yaml",
      `${server.url}/fedora/linux/releases/43/Container`,
      {
        fingerprint: up.fedoraKey.fingerprint,
        url: `${server.url}/keys/fedora.gpg`,
      },
    );
    const { manifest, rootfs } = await build(recipe, join(dir, "out-fedora"));
    expect(manifest.name).toBe("fedora-43-x86_64");
    expect(manifest.source).toMatchObject({
      method: "archive",
      layout: "oci",
      verified: `pgp:${up.fedoraKey.fingerprint}`,
      artifact: expect.stringMatching(/Fedora-Container-Base-Generic-43-1\.6\.x86_64\.oci\.tar\.xz$/),
      sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
    expect(manifest.packages).toEqual([
      { name: "bash", version: "5.2.26-3", arch: "noarch" },
      { name: "fedora-release", version: "43-1", arch: "noarch" },
    ]);
    expectContainerReady(rootfs);
    expect(readlinkSync(join(rootfs, "etc/systemd/system/getty@tty1.service"))).toBe("/dev/null");
    expect(existsSync(join(rootfs, "var/cache/dnf/metadata.solv"))).toBe(false);
    expect(readFileSync(join(rootfs, "etc/locale.conf"), "utf8")).toBe("LANG=C.UTF-8\n");
  });

  it("CentOS Stream 9: docker-archive, unsigned CHECKSUM trusted by pinning its sha256", async () => {
    // Plain http cannot carry `trust: https`, so the test pins the artifact's sha256 (the
    // other way the real recipe's comment offers).
    const sha = readFileSync(up.files.centosChecksum!, "utf8").match(
      /Base-9-20261118\.0\.x86_64\.tar\.xz\) = (\w+)/,
    )![1]!;
    const recipe = overrideRecipe("recipes/centos/9.yaml", `${server.url}/centos/9-stream`);
    writeFileSync(recipe, `${readFileSync(recipe, "utf8")}  sha256: ${sha}\n`);
    const { manifest, rootfs } = await build(recipe, join(dir, "out-centos"));
    expect(manifest.name).toBe("centos-9-x86_64");
    expect(manifest.source).toMatchObject({
      layout: "docker-archive",
      verified: "pinned-sha256",
      sha256: sha,
    });
    expect(manifest.packages?.map((p) => p.name)).toEqual(["bash", "centos-release"]);
    expectContainerReady(rootfs);
  });

  it("Gentoo openrc: clearsigned index and DIGESTS, detached .asc, /var/db/pkg, net.eth0", async () => {
    const recipe = overrideRecipe("recipes/gentoo/openrc.yaml", `${server.url}/gentoo/releases`, {
      fingerprint: up.gentooKey.fingerprint,
      url: `${server.url}/keys/service-keys.gpg`,
    });
    const { manifest, rootfs } = await build(recipe, join(dir, "out-gentoo"));
    expect(manifest.name).toBe("gentoo-openrc-x86_64");
    expect(manifest.source).toMatchObject({ layout: "rootfs", verified: `pgp:${up.gentooKey.fingerprint}` });
    const uris = (manifest.source?.inputs ?? []).map((i) => i.uri);
    expect(uris.some((u) => u.endsWith(".DIGESTS"))).toBe(true);
    expect(uris.some((u) => u.endsWith(".asc"))).toBe(true);
    expect(manifest.packages).toContainEqual({
      name: "app-shells/bash",
      version: "5.2_p37-r1",
      arch: "amd64",
    });
    expectContainerReady(rootfs);
    // pct writes eth0's config and links net.eth0 but starts nothing: the template does (vzctl
    // replaces it with net.venet0 itself).
    expect(readlinkSync(join(rootfs, "etc/init.d/net.eth0"))).toBe("net.lo");
    expect(readlinkSync(join(rootfs, "etc/runlevels/default/net.eth0"))).toBe("/etc/init.d/net.eth0");
    expect(existsSync(join(rootfs, "etc/init.d/net.venet0"))).toBe(false);
    expect(readlinkSync(join(rootfs, "etc/runlevels/default/sshd"))).toBe("/etc/init.d/sshd");
    expect(readFileSync(join(rootfs, "etc/inittab"), "utf8")).toMatch(/^#c1:.*tty1/m);
    expect(lstatSync(join(rootfs, "var/cache/distfiles")).isDirectory()).toBe(true);
    expect(existsSync(join(rootfs, "var/cache/distfiles/foo.tar.gz"))).toBe(false);
  });

  it("templar test says why these fixtures cannot boot (placeholder inits), never passes them", async () => {
    // The fixtures' inits are shell-script placeholders (or absent): nothing to boot. What can
    // be tested without booting (the host's network files per distro) is in test/boot-test/.
    for (const [out, why] of [
      ["out-fedora", /its init \/usr\/lib\/systemd\/systemd is a script, not a program/],
      ["out-gentoo", /no init system/],
    ] as const) {
      const r = await templar(["test", join(dir, out)]);
      expect(r.status, r.stderr).toBe(1);
      const last = r.stderr.trim().split("\n").at(-1)!;
      expect(last).toMatch(/^templar: cannot boot-test (fedora-43|gentoo-openrc)-x86_64-\S+: /);
      // Without root the host is what cannot boot it; with root, the template.
      expect(last).toMatch(process.getuid?.() === 0 ? why : /needs root/);
    }
  });

  it("a wrong pinned fingerprint fails the build with one line, exit 3, and no output", async () => {
    const recipe = overrideRecipe(
      "recipes/fedora/44.yaml",
      `${server.url}/fedora/linux/releases/43/Container`,
      {
        fingerprint: "36F612DCF27F7D1A48A835E4DBFCF71C6D9F90A6",
        url: `${server.url}/keys/fedora.gpg`,
      },
    );
    const out = join(dir, "out-refused");
    const r = await templarBuild(recipe, out);
    expect(r.status).toBe(3);
    const errors = r.stderr.split("\n").filter((l) => l.startsWith("templar:"));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(
      /has fingerprint [0-9A-F]{40}, but the recipe pins 36F612DCF27F7D1A48A835E4DBFCF71C6D9F90A6/,
    );
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(existsSync(out) ? spawnSync("ls", ["-A", out], { encoding: "utf8" }).stdout : "").toBe("");
  });
});
