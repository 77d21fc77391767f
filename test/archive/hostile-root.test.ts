import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseManifest } from "../../common/manifest.js";
import { type FixtureServer, serveDirectory } from "../fixtures/http-server.js";
import { rhelTree, rpmDatabase } from "../fixtures/rootfs.js";
import { centosUpstream } from "../fixtures/upstreams.js";
import { haveTools } from "../helpers/require-tool.js";
import { CLI, overrideRecipe, templar } from "./templar-build.js";

/**
 * An upstream root filesystem whose paths are absolute symlinks to files of the BUILD HOST
 * (here: files under this test's directory, standing in for the host's /etc/shadow, /var/log
 * and rpm database). After chroot such a link names a file of the root, so the build must
 * resolve it inside the root: never read, edit or list the host's file.
 */
const tools = haveTools("tar", "xz", "gzip", "zstd", "rpm", "rpmbuild") && existsSync(CLI);
if (!existsSync(CLI) && process.env.CI === "true")
  throw new Error("dist/ is missing: run npm run build first");
const dir = mkdtempSync(join(tmpdir(), "templar-hostile-root-"));
const host = join(dir, "host");
const HOST_SHADOW = "root:$6$hostsalt$hosthash:19000:0:99999:7:::\n";
let server: FixtureServer;
const pinned: Record<string, string> = {};

/** Replaces `path` in the tree with a symlink to `target`. */
function link(root: string, path: string, target: string): void {
  rmSync(join(root, path), { recursive: true, force: true });
  symlinkSync(target, join(root, path));
}

beforeAll(async () => {
  if (!tools) return;
  // The stand-in build host: a shadow file, logs and an rpm database of its own.
  mkdirSync(join(host, "log"), { recursive: true });
  writeFileSync(join(host, "shadow"), HOST_SHADOW);
  writeFileSync(join(host, "log/host.log"), "host log line\n");
  writeFileSync(join(host, "log/host.log.1"), "rotated host log\n");
  rpmDatabase(join(host, "rpmroot"), [{ name: "build-host-only", version: "1", release: "1" }]);
  const www = join(dir, "www");
  // Editing files: /etc/shadow and /var/log lead to the host's.
  pinned.files = centosUpstream(join(www, "files"), (root) => {
    rhelTree(root, "centos", "9");
    link(root, "etc/shadow", join(host, "shadow"));
    link(root, "var/log", join(host, "log"));
  }).sha256;
  // The package database: /var/lib/rpm leads to the host's, and the root has no other.
  pinned.rpmdb = centosUpstream(join(www, "rpmdb"), (root) => {
    rhelTree(root, "centos", "9");
    rmSync(join(root, "usr/lib/sysimage/rpm"), { recursive: true });
    link(root, "var/lib/rpm", join(host, "rpmroot/usr/lib/sysimage/rpm"));
  }).sha256;
  server = await serveDirectory(www);
});
afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function build(variant: string) {
  const recipe = overrideRecipe(dir, "recipes/centos/9.yaml", `${server.url}/${variant}/centos/9-stream`);
  writeFileSync(recipe, `${readFileSync(recipe, "utf8")}  sha256: ${pinned[variant]}\n`);
  const out = join(dir, `out-${variant}`);
  const r = await templar(["build", recipe, "--arch", "x86_64", "--out", out, "--cache", join(dir, "cache")]);
  return { ...r, out };
}

function expectHostUntouched() {
  expect(readFileSync(join(host, "shadow"), "utf8")).toBe(HOST_SHADOW);
  expect(readdirSync(join(host, "log")).sort()).toEqual(["host.log", "host.log.1"]);
  expect(readFileSync(join(host, "log/host.log"), "utf8")).toBe("host log line\n");
}

describe.skipIf(!tools)("a root whose symlinks lead to the build host's files", () => {
  it("the container preset edits none of the host's files (shadow, logs)", async () => {
    const r = await build("files");
    expect(r.status, r.stderr).toBe(0);
    expectHostUntouched();
    // The links stay what they were in the template: inside a container they name its own files.
    const manifestPath = join(r.out, readdirSync(r.out).find((f) => f.endsWith(".manifest.json"))!);
    const manifest = parseManifest(readFileSync(manifestPath), manifestPath);
    expect(manifest.packages?.map((p) => p.name)).toEqual(["bash", "centos-release"]);
    const rootfs = join(r.out, "rootfs");
    mkdirSync(rootfs);
    const artifact = manifestPath.replace(/\.manifest\.json$/, ".tar.zst");
    expect(spawnSync("tar", ["--zstd", "-xpf", artifact, "-C", rootfs]).status).toBe(0);
    expect(readlinkSync(join(rootfs, "etc/shadow"))).toBe(join(host, "shadow"));
  });

  it("the rpm inventory never lists the host's database: no database in the root fails the build", async () => {
    const r = await build("rpmdb");
    expect(r.stderr).not.toContain("build-host-only");
    expect(r.status).toBe(1);
    const errors = r.stderr.split("\n").filter((l) => l.startsWith("templar:"));
    expect(errors).toEqual([
      "templar: rpm inventory: no rpm database in /usr/lib/sysimage/rpm or /var/lib/rpm of the root",
    ]);
    expect(existsSync(r.out) ? readdirSync(r.out) : []).toEqual([]);
    expectHostUntouched();
  });
});
