import { chmod, copyFile, link, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { extractLikeProxmox, treeListing } from "../helpers/oci.js";
import { type ServeProcess, spawnServe } from "../helpers/registry.js";
import { createToken, runProcess, templar } from "../helpers/registry-process.js";
import { haveTools, isRoot } from "../helpers/require-tool.js";
import { makeTree, type PackedTemplate, packTemplate } from "../helpers/template-fixture.js";
import { makeTestCa, type TestCa } from "../helpers/tls.js";

/**
 * Real OCI clients against `templar serve` over TLS, the way Proxmox VE 9 uses them: skopeo
 * inspect, list-tags and `copy docker://... oci-archive:...`, trusting the test CA through a
 * --cert-dir (never --tls-verify=false); then the archive extracted as pct does it, and by umoci.
 */
const tools = haveTools("skopeo", "umoci", "tar", "openssl");
const NAME = "debian-13-x86_64-ocitest";
const VERSION = "13.2.0";
const ARM_NAME = "debian-13-aarch64-ocitest";
const ARCH_FREE = "debian-13-ocitest";

let dir: string;
let ca: TestCa;
let certDir: string;
let packed: PackedTemplate;
let armPacked: PackedTemplate;
let open: ServeProcess;
let closed: ServeProcess;
let pullToken: string;

const hostOf = (url: string) => new URL(url).host;

function skopeo(args: string[]) {
  return runProcess("skopeo", ["--command-timeout", "60s", ...args]);
}

beforeAll(async () => {
  if (!tools) return;
  dir = await mkdtemp(join(tmpdir(), "templar-oci-"));
  ca = await makeTestCa(join(dir));
  // skopeo reads every *.crt in the directory as a CA, and wants a *.cert beside any *.key: only the CA goes in.
  certDir = join(dir, "certs");
  await mkdir(certDir);
  await copyFile(ca.caCert, join(certDir, "ca.crt"));

  const tree = join(dir, "tree");
  await makeTree(tree, 256);
  await mkdir(join(tree, "sbin"));
  await writeFile(join(tree, "sbin", "init"), "#!/bin/sh\n");
  await chmod(join(tree, "sbin", "init"), 0o755);
  await symlink("../etc/hostname", join(tree, "sbin", "hostname-link"));
  await link(join(tree, "etc", "hostname"), join(tree, "etc", "hostname.hard"));
  await mkdir(join(tree, "var", "empty"), { recursive: true });
  await chmod(join(tree, "var", "empty"), 0o1777);
  packed = await packTemplate(tree, join(dir, "out"), NAME, VERSION);

  const storage = join(dir, "data");
  const openConfig = join(dir, "open.yaml");
  const closedConfig = join(dir, "closed.yaml");
  const tls = { cert: ca.cert, key: ca.key };
  await writeFile(openConfig, stringify({ anonymousPull: true, tls }));
  await writeFile(closedConfig, stringify({ anonymousPull: false, tls }));
  const push = createToken(openConfig, "push:*");
  pullToken = createToken(closedConfig, "pull:debian-*");
  open = await spawnServe(storage, openConfig);
  closed = await spawnServe(storage, closedConfig);
  // the same tree as an aarch64 template: with the x86_64 one, the multi-arch repository ARCH_FREE
  armPacked = await packTemplate(tree, join(dir, "out-arm"), ARM_NAME, VERSION);
  for (const out of [packed.outDir, armPacked.outDir]) {
    const pushed = await templar(["push", out, "--registry", open.url, "--token", push], {
      NODE_EXTRA_CA_CERTS: ca.caCert,
    });
    expect(pushed.code, pushed.stderr).toBe(0);
  }
}, 60_000);

afterAll(async () => {
  await open?.stop();
  await closed?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe.runIf(tools)("skopeo and umoci over TLS", () => {
  it("anonymously: inspect and list-tags show the template", async () => {
    const ref = `docker://${hostOf(open.url)}/${NAME}:${VERSION}`;
    const inspect = await skopeo(["inspect", "--cert-dir", certDir, ref]);
    expect(inspect.code, inspect.stderr).toBe(0);
    const info = JSON.parse(inspect.stdout) as {
      Architecture: string;
      Os: string;
      Layers: string[];
      RepoTags: string[];
    };
    expect(info.Architecture).toBe("amd64");
    expect(info.Os).toBe("linux");
    expect(info.Layers).toEqual([packed.manifest.artifacts.find((a) => a.format === "tar.gz")!.digest]);
    expect(info.RepoTags).toEqual([VERSION, "latest"]);

    const tags = await skopeo(["list-tags", "--cert-dir", certDir, `docker://${hostOf(open.url)}/${NAME}`]);
    expect(tags.code, tags.stderr).toBe(0);
    expect((JSON.parse(tags.stdout) as { Tags: string[] }).Tags).toEqual([VERSION, "latest"]);
  });

  it("copy to an oci-archive as Proxmox does; extracted like pct, it is the template; umoci unpacks it", async () => {
    const archive = join(dir, `${NAME}.tar`);
    const copy = await skopeo([
      "copy",
      "--src-cert-dir",
      certDir,
      `docker://${hostOf(open.url)}/${NAME}:${VERSION}`,
      `oci-archive:${archive}`,
    ]);
    expect(copy.code, copy.stderr).toBe(0);

    const rootfs = join(dir, "pct-rootfs");
    const result = await extractLikeProxmox(archive, join(dir, "layout"), rootfs, "amd64");
    expect(result.layers).toEqual([
      {
        mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
        diffId: `sha256:${packed.manifest.rootfs.tarSha256}`,
      },
    ]);
    expect(result.config.config?.Entrypoint ?? []).toEqual(["/sbin/init"]);

    const reference = join(dir, "gnu-tar-rootfs");
    await mkdir(reference);
    const untar = await runProcess("tar", ["--numeric-owner", "-xpzf", packed.gz, "-C", reference]);
    expect(untar.code, untar.stderr).toBe(0);
    const listing = await treeListing(reference);
    expect(listing.length).toBeGreaterThan(8);
    expect(await treeListing(rootfs)).toEqual(listing);

    // umoci opens an OCI layout by tag; skopeo wrote none (Proxmox names no tag), so name the one image.
    const indexPath = join(dir, "layout", "index.json");
    const index = JSON.parse(await readFile(indexPath, "utf8"));
    index.manifests[0].annotations = { "org.opencontainers.image.ref.name": VERSION };
    await writeFile(indexPath, JSON.stringify(index));
    const bundle = join(dir, "bundle");
    const unpack = await runProcess("umoci", [
      "unpack",
      ...(isRoot() ? [] : ["--rootless"]),
      "--image",
      `${join(dir, "layout")}:${VERSION}`,
      bundle,
    ]);
    expect(unpack.code, unpack.stderr).toBe(0);
    const bundleConfig = JSON.parse(await readFile(join(bundle, "config.json"), "utf8"));
    expect(bundleConfig.process.args).toEqual(["/sbin/init"]);
    const umociFiles = (await treeListing(join(bundle, "rootfs"))).map((l) => l.split(" ")[0]);
    expect(umociFiles).toEqual(listing.map((l) => l.split(" ")[0]));
  });

  it("a multi-arch repository: skopeo picks each host's arch from one reference", async () => {
    const ref = `docker://${hostOf(open.url)}/${ARCH_FREE}:${VERSION}`;
    for (const [arch, t] of [
      ["arm64", armPacked],
      ["amd64", packed],
    ] as const) {
      const inspect = await skopeo(["--override-arch", arch, "inspect", "--cert-dir", certDir, ref]);
      expect(inspect.code, inspect.stderr).toBe(0);
      const info = JSON.parse(inspect.stdout) as { Architecture: string; Layers: string[] };
      expect(info.Architecture).toBe(arch);
      expect(info.Layers).toEqual([t.manifest.artifacts.find((a) => a.format === "tar.gz")!.digest]);
    }
    const archive = join(dir, "multi.tar");
    const copy = await skopeo([
      ...["--override-arch", "arm64", "copy", "--src-cert-dir", certDir, ref],
      `oci-archive:${archive}`,
    ]);
    expect(copy.code, copy.stderr).toBe(0);
    const result = await extractLikeProxmox(
      archive,
      join(dir, "layout-arm"),
      join(dir, "rootfs-arm"),
      "arm64",
    );
    expect(result.config.architecture).toBe("arm64");
  });

  it("with anonymous pull off: 401 without credentials, and --creds with a templar token works", async () => {
    const ref = `docker://${hostOf(closed.url)}/${NAME}:${VERSION}`;
    const denied = await skopeo(["inspect", "--cert-dir", certDir, ref]);
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/unauthorized|401/i);
    const wrong = await skopeo(["inspect", "--cert-dir", certDir, "--creds", "me:tmpl_not-a-token", ref]);
    expect(wrong.code).not.toBe(0);

    const creds = `anyone:${pullToken}`;
    const inspect = await skopeo(["inspect", "--cert-dir", certDir, "--creds", creds, ref]);
    expect(inspect.code, inspect.stderr).toBe(0);
    const tags = await skopeo([
      "list-tags",
      "--cert-dir",
      certDir,
      "--creds",
      creds,
      `docker://${hostOf(closed.url)}/${NAME}`,
    ]);
    expect(tags.code, tags.stderr).toBe(0);
    const archive = join(dir, "with-creds.tar");
    const copy = await skopeo([
      "copy",
      "--src-cert-dir",
      certDir,
      "--src-creds",
      creds,
      ref,
      `oci-archive:${archive}`,
    ]);
    expect(copy.code, copy.stderr).toBe(0);
    await extractLikeProxmox(archive, join(dir, "layout2"), join(dir, "rootfs2"), "amd64");
    // the token never reaches the log
    expect(closed.stdout.join("\n")).not.toContain(pullToken);
  });
});
