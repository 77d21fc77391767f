import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { acquire } from "../../builder/sources/archive/acquire.js";
import { type ArchiveConfig, ArchiveConfigSchema } from "../../builder/sources/archive/config.js";
import { applyLayout } from "../../builder/sources/archive/layouts.js";
import { UserError } from "../../common/errors.js";
import { type FixtureServer, serveDirectory } from "../fixtures/http-server.js";
import { makeTestKey, makeUpstreams, type TestKey, type Upstreams } from "../fixtures/upstreams.js";
import { haveTools } from "../helpers/require-tool.js";

const tools = haveTools("tar", "xz", "gzip", "rpm", "rpmbuild");
const dir = mkdtempSync(join(tmpdir(), "templar-acquire-"));
let up: Upstreams;
let server: FixtureServer;
let stranger: TestKey;
let n = 0;

beforeAll(async () => {
  if (!tools) return;
  up = await makeUpstreams(join(dir, "www"));
  stranger = await makeTestKey("Stranger");
  server = await serveDirectory(up.dir);
});
afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

const values = { arch: "x86_64", debarch: "amd64", release: "x" };

function fedora(over: Partial<ArchiveConfig> = {}): ArchiveConfig {
  return ArchiveConfigSchema.parse({
    method: "archive",
    base: `${server.url}/fedora/linux/releases/43/Container`,
    url: "{base}/{arch}/images/Fedora-Container-Base-Generic-43-1.6.{arch}.oci.tar.xz",
    checksums: { url: "{base}/{arch}/images/Fedora-Container-43-1.6-{arch}-CHECKSUM", format: "bsd" },
    signature: {
      kind: "clearsigned",
      keys: [{ fingerprint: up.fedoraKey.fingerprint, url: `${server.url}/keys/fedora.gpg` }],
    },
    layout: "oci",
    ...over,
  });
}

function centos(over: Record<string, unknown> = {}): ArchiveConfig {
  return ArchiveConfigSchema.parse({
    method: "archive",
    base: `${server.url}/centos/9-stream`,
    pattern: { regex: String.raw`CentOS-Stream-Container-Base-9-\d{8}\.\d+\.{arch}\.tar\.xz` },
    checksums: { url: "{base}/{arch}/images/CHECKSUM", format: "bsd" },
    layout: "docker-archive",
    trust: "https",
    ...over,
  });
}

function gentoo(over: Record<string, unknown> = {}): ArchiveConfig {
  return ArchiveConfigSchema.parse({
    method: "archive",
    base: `${server.url}/gentoo/releases`,
    index: { url: "{base}/{debarch}/autobuilds/latest-stage3-{debarch}-openrc.txt", format: "gentoo-latest" },
    checksums: { url: "{artifact}.DIGESTS", format: "gentoo-digests" },
    signature: {
      kind: ["clearsigned", "detached"],
      url: "{artifact}.asc",
      keys: [{ fingerprint: up.gentooKey.fingerprint, url: `${server.url}/keys/service-keys.gpg` }],
    },
    layout: "rootfs",
    ...over,
  });
}

async function build(config: ArchiveConfig, cache = join(dir, "cache")) {
  const root = join(dir, `root-${++n}`);
  mkdirSync(root);
  const work = join(dir, `work-${n}`);
  mkdirSync(work);
  const log: string[] = [];
  try {
    const got = await acquire(config, { cacheDir: cache, recipeDir: dir, values, log: (l) => log.push(l) });
    const layout = await applyLayout(config.layout, got.path, root, { workDir: work, ociArch: "amd64" });
    return { root, got, layout, log };
  } catch (err) {
    (err as { root?: string }).root = root;
    throw err;
  }
}

async function refused(config: ArchiveConfig, pattern: RegExp) {
  const err = await build(config, join(dir, `cache-${n}`)).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UserError);
  expect((err as Error).message).toMatch(pattern);
  expect(readdirSync((err as { root: string }).root)).toEqual([]); // nothing extracted
}

describe.skipIf(!tools)("archive source: finding, verifying, unpacking", () => {
  it("Fedora: OCI layout behind a clearsigned CHECKSUM", async () => {
    const { root, got, layout } = await build(fedora());
    expect(got.verified).toBe(`pgp:${up.fedoraKey.fingerprint}`);
    expect(got.inputs[0]).toMatchObject({
      uri: expect.stringContaining(".oci.tar.xz"),
      verified: got.verified,
    });
    expect(got.inputs.some((i) => i.verified === `fingerprint:${up.fedoraKey.fingerprint}`)).toBe(true);
    expect(layout.layers).toHaveLength(1);
    expect(readFileSync(join(root, "etc/os-release"), "utf8")).toContain("ID=fedora");
    expect(existsSync(join(root, "usr/lib/sysimage/rpm/rpmdb.sqlite"))).toBe(true);
  });

  it("CentOS: newest docker-archive from an unsigned CHECKSUM needs trust: https", async () => {
    const { trust: _, ...unsigned } = centos();
    const lint = ArchiveConfigSchema.safeParse(unsigned);
    expect(lint.error?.issues[0]?.message).toMatch(/pinned sha256 or an explicit `trust: https`/);
    await expect(build(centos())).rejects.toThrow(/plain http: refusing an unsigned download/);
    // A pinned sha256 is trust enough, also over plain http.
    const pin = readFileSync(up.files.centosChecksum!, "utf8").match(/Base-9-20261118.*= (\w+)/)![1]!;
    const { root, got } = await build(ArchiveConfigSchema.parse({ ...unsigned, sha256: pin }));
    expect(got.artifactUrl).toMatch(/CentOS-Stream-Container-Base-9-20261118\.0\.x86_64\.tar\.xz$/);
    expect(got.verified).toBe("pinned-sha256");
    expect(readFileSync(join(root, "etc/os-release"), "utf8")).toContain("ID=centos");
  });

  it("finds the newest artifact through a directory listing page", async () => {
    const images = join(up.dir, "centos/9-stream/x86_64/images");
    writeFileSync(
      join(images, "index.html"),
      [
        '<a href="../">../</a>',
        '<a href="CentOS-Stream-Container-Base-9-20261110.0.x86_64.tar.xz">old</a>',
        '<a href="CentOS-Stream-Container-Base-9-20261118.0.x86_64.tar.xz">new</a>',
        '<a href="CHECKSUM">CHECKSUM</a>',
      ].join("\n"),
    );
    const pin = readFileSync(up.files.centosChecksum!, "utf8").match(/Base-9-20261118.*= (\w+)/)![1]!;
    const { trust: _, ...config } = centos({
      pattern: {
        regex: String.raw`CentOS-Stream-Container-Base-9-\d{8}\.\d+\.{arch}\.tar\.xz`,
        listing: "{base}/{arch}/images/index.html",
      },
    });
    const { got } = await build(ArchiveConfigSchema.parse({ ...config, sha256: pin }));
    expect(got.artifactUrl).toMatch(/Base-9-20261118\.0\.x86_64\.tar\.xz$/);
  });

  it("Gentoo: clearsigned index and DIGESTS, detached signature by a signing subkey", async () => {
    const { root, got } = await build(gentoo());
    expect(got.verified).toBe(`pgp:${up.gentooKey.fingerprint}`);
    expect(got.artifactUrl).toMatch(/20261117T164025Z\/stage3-amd64-openrc-20261117T164025Z\.tar\.xz$/);
    expect(got.inputs.map((i) => i.uri)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/latest-stage3/),
        expect.stringMatching(/DIGESTS$/),
        expect.stringMatching(/\.asc$/),
      ]),
    );
    expect(existsSync(join(root, "var/db/pkg/app-shells/bash-5.2_p37-r1/PF"))).toBe(true);
    // Pinning the subkey's fingerprint names the same primary key.
    const sub = gentoo({
      signature: {
        kind: ["clearsigned", "detached"],
        url: "{artifact}.asc",
        keys: [{ fingerprint: up.gentooKey.subkeyFingerprint, url: `${server.url}/keys/service-keys.gpg` }],
      },
    });
    expect((await build(sub)).got.verified).toBe(`pgp:${up.gentooKey.fingerprint}`);
  });

  it("reuses the cached artifact while its checksum matches, resumes a cut download", async () => {
    const cache = join(dir, "cache-resume");
    const path =
      "/fedora/linux/releases/43/Container/x86_64/images/Fedora-Container-Base-Generic-43-1.6.x86_64.oci.tar.xz";
    server.truncate.set(path, { after: 4096, times: 1 });
    const first = await build(fedora(), cache);
    expect(first.log.join("\n")).toMatch(/resuming/);
    const ranged = server.requests.filter((r) => r.path === path && r.range);
    expect(ranged).toHaveLength(1);
    expect(ranged[0]!.range).toMatch(/^bytes=[1-9]\d*-$/);
    const before = server.requests.filter((r) => r.path === path).length;
    const second = await build(fedora(), cache);
    expect(second.got.fromCache).toBe(true);
    expect(server.requests.filter((r) => r.path === path).length).toBe(before);
  });

  it("refuses a truncated download, keeping only the partial file", async () => {
    const path =
      "/gentoo/releases/amd64/autobuilds/20261117T164025Z/stage3-amd64-openrc-20261117T164025Z.tar.xz";
    server.truncate.set(path, { after: 100, times: 99 });
    try {
      await refused(gentoo(), /interrupted after/);
    } finally {
      server.truncate.delete(path);
    }
  });

  it("refuses a tampered artifact", async () => {
    const original = readFileSync(up.files.fedora!);
    const bad = Buffer.from(original);
    bad[bad.length - 100]! ^= 1;
    writeFileSync(up.files.fedora!, bad);
    try {
      await refused(fedora(), /sha256 is \w+, expected \w+: the download is corrupt or was tampered with/);
    } finally {
      writeFileSync(up.files.fedora!, original);
    }
  });

  it("refuses a tampered checksum file", async () => {
    const original = readFileSync(up.files.fedoraChecksum!, "utf8");
    writeFileSync(
      up.files.fedoraChecksum!,
      original.replace(/= ([0-9a-f])/, (_m, c: string) => `= ${c === "0" ? "1" : "0"}`),
    );
    try {
      await refused(fedora(), /checksum file .*BAD signature/);
    } finally {
      writeFileSync(up.files.fedoraChecksum!, original);
    }
  });

  it("refuses a signature by another key, and a key that is not the pinned one", async () => {
    const original = readFileSync(up.files.gentooAsc!);
    const { detachSign } = await import("../fixtures/upstreams.js");
    writeFileSync(up.files.gentooAsc!, await detachSign(stranger, readFileSync(up.files.gentoo!)));
    try {
      await refused(gentoo(), /signed by key \w+, not by the pinned/);
    } finally {
      writeFileSync(up.files.gentooAsc!, original);
    }
    writeFileSync(join(up.dir, "keys/stranger.gpg"), stranger.publicKeyArmored);
    const wrongKey = fedora({
      signature: {
        kind: "clearsigned",
        keys: [{ fingerprint: up.fedoraKey.fingerprint, url: `${server.url}/keys/stranger.gpg` }],
      },
    });
    await refused(
      wrongKey,
      new RegExp(`has fingerprint ${stranger.fingerprint}, but the recipe pins ${up.fedoraKey.fingerprint}`),
    );
    const wrongPin = fedora({
      signature: {
        kind: "clearsigned",
        keys: [{ fingerprint: stranger.fingerprint, url: `${server.url}/keys/fedora.gpg` }],
      },
    });
    await refused(wrongPin, /but the recipe pins/);
  });

  it("refuses an unsigned plain-http source", async () => {
    await refused(centos(), /plain http: refusing an unsigned download over http/);
  });
});
