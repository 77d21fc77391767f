import { createHash } from "node:crypto";
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningRegistry, startRegistry } from "../../registry/server.js";
import { LocalDriver } from "../../registry/storage/local-driver.js";
import { bearer, writeConfig } from "../helpers/registry.js";
import { runProcess, templar } from "../helpers/registry-process.js";
import { haveTools, isRoot } from "../helpers/require-tool.js";
import { makeTestCa, type TestCa } from "../helpers/tls.js";
import { generateKey, type Packed, packRootfs } from "./fixture.js";

/**
 * LXC and Incus hosts with the tools they already have, against `templar serve` over TLS with a
 * throwaway CA: `lxc-create -t download` (lxc-download, wget trusting the CA through WGETRC) and
 * `incus remote add --protocol simplestreams` (Go trusting it through SSL_CERT_FILE).
 */
const tools = haveTools("wget", "curl", "xz", "tar", "openssl");
const lxcReady = tools && haveTools("lxc-create") && (isRoot() || skipWhy("lxc-create needs root"));
const incusReady = tools && haveTools("incus");

function skipWhy(why: string): boolean {
  if (process.env.CI === "true") throw new Error(`${why} (CI runs as root)`);
  console.warn(`skipping: ${why}`);
  return false;
}

let dir: string;
let ca: TestCa;
let registry: RunningRegistry;
let token: string;
let port: string;
const trusted = () => ({ NODE_EXTRA_CA_CERTS: ca.caCert });
const name = "debian-13-x86_64";
const flavoured = "debian-13-x86_64-minimal";
let v1: Packed;
let minimal: Packed;

async function get(path: string): Promise<Response> {
  // Node's fetch trusts NODE_EXTRA_CA_CERTS only at start-up: ask curl, which takes the CA file.
  const r = await runProcess("curl", [
    "-sS",
    "--cacert",
    ca.caCert,
    "-o",
    "-",
    "-w",
    "\n%{http_code}",
    `${registry.url}${path}`,
  ]);
  const at = r.stdout.lastIndexOf("\n");
  return new Response(r.stdout.slice(0, at), { status: Number(r.stdout.slice(at + 1)) || 599 });
}

async function getBytes(path: string): Promise<Buffer> {
  const out = join(dir, `dl-${Math.random().toString(36).slice(2)}`);
  const r = await runProcess("curl", ["-sSf", "--cacert", ca.caCert, "-o", out, `${registry.url}${path}`]);
  if (r.code !== 0) throw new Error(`GET ${path}: ${r.stderr}`);
  return readFile(out);
}

async function push(outDir: string): Promise<void> {
  const r = await templar(["push", outDir, "--registry", registry.url, "--token", token], trusted());
  if (r.code !== 0) throw new Error(`templar push: ${r.stderr}`);
}

/** Every path the three indexes name, to check that none answers 404. */
async function namedPaths(): Promise<string[]> {
  const paths: string[] = [];
  const index = await (await get("/meta/1.0/index-system")).text();
  for (const line of index.trim().split("\n").filter(Boolean)) {
    const dirPath = line.split(";")[5]!;
    paths.push(`${dirPath}rootfs.tar.xz`, `${dirPath}meta.tar.xz`);
  }
  const images = JSON.parse(await (await get("/streams/v1/images.json")).text());
  for (const product of Object.values(images.products) as {
    versions: Record<string, { items: Record<string, { path: string }> }>;
  }[]) {
    for (const version of Object.values(product.versions)) {
      for (const item of Object.values(version.items)) paths.push(`/${item.path}`);
    }
  }
  return paths;
}

/** Files, links and directories of a tree: relative path -> type, mode and content hash. */
async function treeOf(root: string, skip: Set<string> = new Set()): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (rel: string) => {
    for (const entry of (await readdir(join(root, rel))).sort()) {
      const path = rel ? `${rel}/${entry}` : entry;
      if (skip.has(path)) continue;
      const full = join(root, path);
      const info = await lstat(full);
      const mode = (info.mode & 0o7777).toString(8);
      if (info.isSymbolicLink()) out.set(path, `link ${await readlink(full)}`);
      else if (info.isDirectory()) {
        out.set(path, `dir ${mode}`);
        await walk(path);
      } else
        out.set(
          path,
          `file ${mode} ${createHash("sha256")
            .update(await readFile(full))
            .digest("hex")}`,
        );
    }
  };
  await walk("");
  return out;
}

beforeAll(async () => {
  if (!tools) return;
  dir = await mkdtemp(join(tmpdir(), "templar-lxc-"));
  ca = await makeTestCa(dir);
  const configPath = join(dir, "registry.yaml");
  const tokens = await writeConfig(configPath, {
    tokens: { maintainer: ["push:*", "delete:*", "pull:*"] },
    gc: { interval: 0 },
    cacheTtl: "1ms",
  });
  token = tokens.maintainer!;
  registry = await startRegistry({
    storage: new LocalDriver(join(dir, "data")),
    configPath,
    host: "127.0.0.1",
    port: 0,
    tls: { cert: ca.cert, key: ca.key },
    log: () => {},
  });
  port = new URL(registry.url).port;
  const suite = { formats: "zst,lxc,incus" };
  // Signed by the maintainer: the metadata tarballs get their .asc like the other artifacts.
  const maintainer = await generateKey(join(dir, "maintainer"), "LXC Maintainer");
  v1 = await packRootfs(dir, name, "13.1.0", { epoch: 1_780_000_000, signKey: maintainer.secret, ...suite });
  minimal = await packRootfs(dir, flavoured, "13.1.0", { epoch: 1_780_000_000, ...suite });
  const rc = await packRootfs(dir, name, "13.2.0-rc.1", { epoch: 1_780_100_000, ...suite });
  const plain = await packRootfs(dir, "debian-12-x86_64", "12.9.0", { epoch: 1_780_000_000, formats: "gz" });
  for (const p of [v1, minimal, rc, plain]) await push(p.outDir);
}, 120_000);

afterAll(async () => {
  await registry?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe.skipIf(!tools)("LXC's index and the simplestreams documents", () => {
  it("index-system lists each image once per release name, newest build; pre-releases and templates without the files are left out", async () => {
    const res = await get("//meta/1.0/index-system.7");
    expect(res.status).toBe(200);
    const lines = (await res.text()).trim().split("\n");
    expect(lines).toEqual([
      "debian;13;amd64;default;20260528_2026;/images/debian/13/amd64/default/20260528_2026/",
      "debian;13;amd64;minimal;20260528_2026;/images/debian/13/amd64/minimal/20260528_2026/",
    ]);
    expect(await (await get("/meta/1.0/index-user")).text()).toBe(`${lines.join("\n")}\n`);
    // lxc-download's own URL shape: a doubled slash before the file name.
    const meta = await getBytes("//images/debian/13/amd64/default/20260528_2026//meta.tar.xz");
    expect(createHash("sha256").update(meta).digest("hex")).toBe(
      v1.manifest.artifacts.find((a) => a.format === "lxc-meta.tar.xz")!.digest.slice(7),
    );
  });

  it("the metadata tarballs are signed and their signatures served like the other artifacts", async () => {
    for (const format of ["lxc-meta.tar.xz", "incus-meta.tar.xz", "tar.xz"]) {
      const res = await get(`/v1/templates/${name}/13.1.0/signature/${format}`);
      expect(res.status, format).toBe(200);
      expect(await res.text()).toBe(await readFile(`${v1.file(format)}.asc`, "utf8"));
    }
  });

  it("images.json: products, aliases, YYYYMMDD_hhmm keys with the semver as a property, the fingerprint", async () => {
    const images = JSON.parse(await (await get("/streams/v1/images.json")).text());
    expect(Object.keys(images.products)).toEqual(["debian:13:amd64:default", "debian:13:amd64:minimal"]);
    const product = images.products["debian:13:amd64:default"];
    expect(product.aliases).toBe(`debian/13,debian/13/default,${name}`);
    expect(Object.keys(product.versions)).toEqual(["20260528_2026"]);
    const version = product.versions["20260528_2026"];
    expect(version.templar_version).toBe("13.1.0");
    const incusMeta = v1.manifest.artifacts.find((a) => a.format === "incus-meta.tar.xz")!;
    expect(version.items["incus.tar.xz"].combined_rootxz_sha256).toBe(incusMeta.combinedSha256);
    expect(version.items["lxd.tar.xz"].path).toBe(version.items["incus.tar.xz"].path);
    const index = JSON.parse(await (await get("/streams/v1/index.json")).text());
    expect(index.index.images.products).toEqual(Object.keys(images.products));
    for (const path of await namedPaths()) expect((await get(path)).status, path).toBe(200);
  });

  it("a version pushed later appears in both indexes, a deleted one disappears, and no named path is a 404", async () => {
    const v2 = await packRootfs(dir, name, "13.2.0", { epoch: 1_780_200_000, formats: "lxc,incus" });
    await push(v2.outDir);
    const index = await (await get("/meta/1.0/index-system")).text();
    expect(index).toContain(
      "debian;13;amd64;default;20260531_0400;/images/debian/13/amd64/default/20260531_0400/",
    );
    let images = JSON.parse(await (await get("/streams/v1/images.json")).text());
    expect(Object.keys(images.products["debian:13:amd64:default"].versions)).toEqual([
      "20260528_2026",
      "20260531_0400",
    ]);
    for (const path of await namedPaths()) expect((await get(path)).status, path).toBe(200);

    const del = await runProcess("curl", [
      ...["-sS", "-X", "DELETE", "--cacert", ca.caCert, "-H", `authorization: Bearer ${token}`],
      `${registry.url}/v1/templates/${name}/13.2.0`,
    ]);
    expect(del.code).toBe(0);
    expect(await (await get("/meta/1.0/index-system")).text()).toContain(";20260528_2026;");
    images = JSON.parse(await (await get("/streams/v1/images.json")).text());
    expect(Object.keys(images.products["debian:13:amd64:default"].versions)).toEqual(["20260528_2026"]);
    expect(
      (await get("/simplestreams/images/debian/13/amd64/default/20260531_0400/rootfs.tar.xz")).status,
    ).toBe(404);
    for (const path of await namedPaths()) expect((await get(path)).status, path).toBe(200);
  }, 60_000);

  it("two replicas over the same storage serve byte-identical documents", async () => {
    const second = await startRegistry({
      storage: new LocalDriver(join(dir, "data")),
      configPath: join(dir, "registry.yaml"),
      host: "127.0.0.1",
      port: 0,
      log: () => {},
    });
    try {
      for (const path of ["/streams/v1/images.json", "/streams/v1/index.json", "/meta/1.0/index-system"]) {
        const a = await getBytes(path);
        const b = Buffer.from(
          await (await fetch(`${second.url}${path}`, { headers: bearer(undefined) })).arrayBuffer(),
        );
        expect(b.equals(a), path).toBe(true);
      }
    } finally {
      await second.close();
    }
  });
});

describe.skipIf(!tools)("a mirror of the registry", () => {
  it("copies the metadata tarballs and their signatures, and serves the same documents", async () => {
    const dest = join(dir, "mirror");
    const r = await templar(["mirror", registry.url, dest], trusted());
    expect(r.code, r.stderr).toBe(0);
    const base = `templates/${name}/versions/13.1.0`;
    for (const format of ["lxc-meta.tar.xz", "incus-meta.tar.xz"]) {
      expect(await readFile(join(dest, `${base}.${format}.asc`), "utf8")).toBe(
        await readFile(`${v1.file(format)}.asc`, "utf8"),
      );
    }
    const mirror = await startRegistry({
      storage: new LocalDriver(dest),
      configPath: null,
      host: "127.0.0.1",
      port: 0,
      log: () => {},
    });
    try {
      for (const path of ["/streams/v1/images.json", "/meta/1.0/index-system"]) {
        const copy = Buffer.from(await (await fetch(`${mirror.url}${path}`)).arrayBuffer());
        expect(copy.equals(await getBytes(path)), path).toBe(true);
      }
    } finally {
      await mirror.close();
    }
  }, 60_000);
});

describe.skipIf(!lxcReady)("LXC: lxc-create -t download", () => {
  async function lxcCreate(lxcpath: string, ...args: string[]) {
    const wgetrc = join(dir, "wgetrc");
    await writeFile(wgetrc, `ca_certificate = ${ca.caCert}\n`);
    const cache = join(dir, "lxc-cache");
    return runProcess(
      "lxc-create",
      ["-P", lxcpath, "-t", "download", "-n", "t1", "--", "--server", `127.0.0.1:${port}`, ...args],
      { ...process.env, WGETRC: wgetrc, LXC_CACHE_PATH: cache },
    );
  }

  it("creates a container whose rootfs is the template and whose config includes common.conf", async () => {
    const lxcpath = await mkdtemp(join(dir, "lxcpath-"));
    const r = await lxcCreate(
      lxcpath,
      "--dist",
      "debian",
      "--release",
      "13",
      "--arch",
      "amd64",
      "--flush-cache",
    );
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const tree = join(dir, `tree-${name}-13.1.0`);
    // lxc-download adds dev/pts; everything else is the template's.
    expect(await treeOf(join(lxcpath, "t1", "rootfs"), new Set(["dev/pts"]))).toEqual(await treeOf(tree));
    const config = await readFile(join(lxcpath, "t1", "config"), "utf8");
    expect(config).toContain("lxc.include = /usr/share/lxc/config/common.conf");
    expect(config).toContain("lxc.arch = x86_64");
    expect(config).toContain("lxc.uts.name = t1");
    await rm(lxcpath, { recursive: true, force: true });
  }, 120_000);

  it("--variant picks the flavour; an unknown release fails with lxc-download's own error", async () => {
    const lxcpath = await mkdtemp(join(dir, "lxcpath-"));
    const r = await lxcCreate(
      lxcpath,
      "-d",
      "debian",
      "-r",
      "13",
      "-a",
      "amd64",
      "--variant",
      "minimal",
      "--flush-cache",
    );
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const hello = await readFile(join(lxcpath, "t1", "rootfs", "usr/bin/hello"), "utf8");
    expect(hello).toContain(`${flavoured}-13.1.0`);
    await rm(lxcpath, { recursive: true, force: true });

    const other = await mkdtemp(join(dir, "lxcpath-"));
    const bad = await lxcCreate(other, "-d", "debian", "-r", "99", "-a", "amd64", "--flush-cache");
    expect(bad.code).not.toBe(0);
    expect(bad.stdout + bad.stderr).toContain("ERROR: Couldn't find a matching image");
    await rm(other, { recursive: true, force: true });
  }, 120_000);
});

describe.skipIf(!incusReady)("Incus: a simplestreams remote", () => {
  it("incus image list shows the template under its aliases; image info shows the fingerprint of the served files", async () => {
    const conf = join(dir, "incus-conf");
    await mkdir(conf, { recursive: true });
    const env = { ...process.env, INCUS_CONF: conf, SSL_CERT_FILE: ca.caCert };
    const incus = (...args: string[]) => runProcess("incus", args, env);
    const add = await incus("remote", "add", "tt", registry.url, "--protocol", "simplestreams", "--public");
    expect(add.code, add.stderr).toBe(0);
    const list = await incus("image", "list", "tt:", "--format", "json");
    expect(list.code, list.stderr).toBe(0);
    const listed = JSON.parse(list.stdout) as {
      fingerprint: string;
      architecture: string;
      aliases: { name: string }[];
    }[];
    expect(listed).toHaveLength(2);
    const plain = listed.find((i) => i.aliases.some((a) => a.name === "debian/13"))!;
    expect(plain.architecture).toBe("x86_64");
    // Incus adds an `/<arch>` form of each alias itself.
    const aliases = ["debian/13", "debian/13/default", name];
    expect(plain.aliases.map((a) => a.name).sort()).toEqual(
      [...aliases, ...aliases.map((a) => `${a}/amd64`)].sort(),
    );

    const info = await incus("image", "info", "tt:debian/13");
    expect(info.code, info.stderr).toBe(0);
    const fingerprint = /Fingerprint: ([0-9a-f]{64})/.exec(info.stdout)?.[1];
    const images = JSON.parse(await (await get("/streams/v1/images.json")).text());
    const items = images.products["debian:13:amd64:default"].versions["20260528_2026"].items;
    const served = Buffer.concat([
      await getBytes(`/${items["incus.tar.xz"].path}`),
      await getBytes(`/${items["root.tar.xz"].path}`),
    ]);
    expect(fingerprint).toBe(createHash("sha256").update(served).digest("hex"));
    expect(plain.fingerprint).toBe(fingerprint);
    expect(info.stdout).toContain("Architecture: x86_64");
  }, 60_000);
});
