import { execFileSync } from "node:child_process";
import { cp, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeltaIndexSchema } from "../../common/delta.js";
import { sha256, startTestRegistry, type TestRegistry } from "../helpers/registry.js";
import { templar } from "../helpers/registry-process.js";
import { haveTools } from "../helpers/require-tool.js";
import { makeTree, type PackedTemplate, packTemplate } from "../helpers/template-fixture.js";

/**
 * Delta updates end to end: the registry makes zstd patches after a push, `templar pull` and
 * `update` use them when the cache holds the older version, verify the patched tar against the
 * signed manifest, and fall back to the full artifact on any failure.
 */
const ready = haveTools("tar", "gzip", "pigz", "zstd");
process.env.TEMPLAR_ALLOW_UNSIGNED = "1";
// The patch route itself is tested here; what --delta auto chooses, in its own test below.
process.env.TEMPLAR_DELTA = "always";

const NAME = "deltatest-1-x86_64";

/** A tree of many small text files (like /usr/share) plus random data. */
async function realishTree(dir: string): Promise<void> {
  await makeTree(dir, 1024, "base");
  const docs = join(dir, "usr", "share", "doc");
  for (let i = 0; i < 200; i++) {
    await mkdir(join(docs, `pkg${i}`), { recursive: true });
    await writeFile(
      join(docs, `pkg${i}`, "copyright"),
      `Package pkg${i}\n${"Permission is hereby granted, free of charge, to any person. ".repeat(20 + (i % 17))}\n`,
    );
  }
}

function tarSha(file: string, format: "tar.gz" | "tar.zst"): string {
  const tool = format === "tar.gz" ? "gzip" : "zstd";
  return sha256(execFileSync(tool, ["-dc", file], { maxBuffer: 1 << 28 }));
}

describe.skipIf(!ready)("delta updates", () => {
  let dir: string;
  let r: TestRegistry;
  let v1: PackedTemplate;
  let v2: PackedTemplate;
  let patchDigest: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "templar-delta-"));
    r = await startTestRegistry({ gc: { interval: 0 } });
    const a = join(dir, "tree-a");
    await realishTree(a);
    const b = join(dir, "tree-b");
    await cp(a, b, { recursive: true });
    // The update: a few files changed, one added, one removed.
    await writeFile(join(b, "etc", "os-release"), "ID=test\nVERSION_ID=1.1\n");
    await writeFile(join(b, "usr", "share", "doc", "pkg7", "copyright"), "Package pkg7 (new upstream)\n");
    await writeFile(join(b, "usr", "share", "doc", "pkg8", "NEWS"), "pkg8 1.1: fixes\n".repeat(50));
    await rm(join(b, "usr", "share", "doc", "pkg9"), { recursive: true });
    v1 = await packTemplate(a, join(dir, "out-1"), NAME, "1.0.0");
    v2 = await packTemplate(b, join(dir, "out-2"), NAME, "1.1.0");
    for (const t of [v1, v2]) {
      const pushed = await templar(["push", t.outDir, "--registry", r.url], {
        TEMPLAR_TOKEN: r.tokens.push!,
      });
      expect(pushed.code, pushed.stderr).toBe(0);
    }
    await r.registry.deps.deltas!.idle();
  }, 120_000);

  afterAll(async () => {
    await r?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("the registry lists a patch from the previous version, much smaller than the artifact", async () => {
    const res = await fetch(`${r.url}/v1/templates/${NAME}/1.1.0/deltas`);
    expect(res.status).toBe(200);
    const index = DeltaIndexSchema.parse(await res.json());
    expect(index.tarSha256).toBe(v2.manifest.rootfs.tarSha256);
    expect(index.deltas).toHaveLength(1);
    const [delta] = index.deltas;
    expect(delta!.fromVersion).toBe("1.0.0");
    expect(delta!.fromTarSha256).toBe(v1.manifest.rootfs.tarSha256);
    const full = v2.manifest.artifacts.find((a) => a.format === "tar.zst")!.size;
    console.log(
      `delta ${delta!.size} bytes vs tar.zst ${full} bytes (${((100 * delta!.size) / full).toFixed(2)}%), tar ${v2.manifest.rootfs.tarSize} bytes`,
    );
    expect(delta!.size).toBeLessThan(full / 10);
    patchDigest = delta!.digest;
    // The oldest version has nothing to start from.
    const first = DeltaIndexSchema.parse(
      await (await fetch(`${r.url}/v1/templates/${NAME}/1.0.0/deltas`)).json(),
    );
    expect(first.deltas).toEqual([]);
    // The signed manifest is untouched.
    const manifest = await (await fetch(`${r.url}/v1/templates/${NAME}/1.1.0`)).arrayBuffer();
    expect(Buffer.from(manifest).equals(await readFile(v2.manifestPath))).toBe(true);
  });

  async function cacheWithV1(label: string, format = "gz"): Promise<string> {
    const cache = join(dir, `cache-${label}`);
    const pulled = await templar([
      "pull",
      `${NAME}@1.0.0`,
      "--registry",
      r.url,
      "--dest",
      cache,
      "--format",
      format,
    ]);
    expect(pulled.code, pulled.stderr).toBe(0);
    return cache;
  }

  async function stateLeftovers(cache: string): Promise<string[]> {
    return (await readdir(join(cache, ".templar"))).filter((f) =>
      /\.(patch|from\.tar|rebuilt|partial)$/.test(f),
    );
  }

  it("pull of the newer version downloads only the patch and ends with the verified tar", async () => {
    const cache = await cacheWithV1("delta");
    const res = await templar(["pull", `${NAME}@1.1.0`, "--registry", r.url, "--dest", cache, "--json"]);
    expect(res.code, res.stderr).toBe(0);
    const result = JSON.parse(res.stdout);
    expect(result.via).toBe("delta");
    expect(result.deltaFrom).toBe("1.0.0");
    expect(result.transferred).toBeLessThan(result.size / 10);
    const file = join(cache, `${NAME}.tar.gz`);
    expect(tarSha(file, "tar.gz")).toBe(v2.manifest.rootfs.tarSha256);
    const origin = JSON.parse(await readFile(join(cache, ".templar", `${NAME}.tar.gz.origin.json`), "utf8"));
    expect(origin).toMatchObject({ version: "1.1.0", via: "delta", deltaFrom: "1.0.0" });
    expect(origin.tarSha256).toBe(v2.manifest.rootfs.tarSha256);
    const bytes = await readFile(file);
    // Recompressed here: the record says so exactly when the bytes differ from the registry's.
    const artifact = v2.manifest.artifacts.find((a) => a.format === "tar.gz")!;
    if (`sha256:${sha256(bytes)}` === artifact.digest) expect(origin.local).toBeUndefined();
    else expect(origin.local).toEqual({ digest: `sha256:${sha256(bytes)}`, size: bytes.length });
    expect(await stateLeftovers(cache)).toEqual([]);

    // Up to date afterwards, also for list; a changed file is noticed (hashed against `local`).
    const again = await templar(["pull", `${NAME}@1.1.0`, "--registry", r.url, "--dest", cache, "--json"]);
    expect(JSON.parse(again.stdout)).toMatchObject({ upToDate: true, via: "cache", transferred: 0 });
    const list = await templar(["list", "--dest", cache, "--json"]);
    expect(JSON.parse(list.stdout)[0]).toMatchObject({ name: NAME, version: "1.1.0", present: true });
  });

  it("update uses the patch too, and --no-delta forces the full artifact", async () => {
    const cache = await cacheWithV1("update", "zst");
    const res = await templar(["update", NAME, "--registry", r.url, "--dest", cache, "--json"]);
    expect(res.code, res.stderr).toBe(0);
    expect(JSON.parse(res.stdout)).toMatchObject({ version: "1.1.0", via: "delta", previous: "1.0.0" });
    expect(tarSha(join(cache, `${NAME}.tar.zst`), "tar.zst")).toBe(v2.manifest.rootfs.tarSha256);

    const plain = await cacheWithV1("nodelta");
    const full = await templar([
      "update",
      NAME,
      "--registry",
      r.url,
      "--dest",
      plain,
      "--no-delta",
      "--json",
    ]);
    expect(full.code, full.stderr).toBe(0);
    const result = JSON.parse(full.stdout);
    expect(result.via).toBe("full");
    expect(result.transferred).toBe(result.size);
  });

  it("the delta mode comes from the flag, the environment or the host config; a bad one is refused, saying where it was set", async () => {
    const config = join(dir, "host-nodelta.yaml");
    await writeFile(config, "delta: never\n");
    const byConfig = await cacheWithV1("config-nodelta", "zst");
    const res = await templar(["update", NAME, "--registry", r.url, "--dest", byConfig, "--json"], {
      TEMPLAR_HOST_CONFIG: config,
      TEMPLAR_DELTA: "",
    });
    expect(res.code, res.stderr).toBe(0);
    expect(JSON.parse(res.stdout)).toMatchObject({ version: "1.1.0", via: "full" });

    // The environment wins over the file, the flag over both.
    const byEnv = await cacheWithV1("env-delta", "zst");
    const back = await templar(["update", NAME, "--registry", r.url, "--dest", byEnv, "--json"], {
      TEMPLAR_HOST_CONFIG: config,
      TEMPLAR_DELTA: "always",
    });
    expect(back.code, back.stderr).toBe(0);
    expect(JSON.parse(back.stdout)).toMatchObject({ version: "1.1.0", via: "delta" });
    const byFlag = await cacheWithV1("flag-nodelta", "zst");
    const full = await templar(
      [
        "pull",
        `${NAME}@1.1.0`,
        "--registry",
        r.url,
        "--dest",
        byFlag,
        "--format",
        "zst",
        "--no-delta",
        "--json",
      ],
      { TEMPLAR_DELTA: "always" },
    );
    expect(JSON.parse(full.stdout)).toMatchObject({ via: "full" });

    const bad = await templar(["pull", `${NAME}@1.1.0`, "--registry", r.url, "--dest", byFlag], {
      TEMPLAR_DELTA: "sometimes",
    });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/TEMPLAR_DELTA "sometimes": expected auto, always, never/);
    const badWindow = await templar(["pull", `${NAME}@1.1.0`, "--registry", r.url, "--dest", byFlag], {
      TEMPLAR_DELTA_MAX_WINDOW: "huge",
    });
    expect(badWindow.code).toBe(2);
    expect(badWindow.stderr).toMatch(
      /TEMPLAR_DELTA_MAX_WINDOW "huge": expected a whole number from 20 to 31/,
    );
    await writeFile(config, "deltaMaxWindow: 99\n");
    const badFile = await templar(["pull", `${NAME}@1.1.0`, "--registry", r.url, "--dest", byFlag], {
      TEMPLAR_HOST_CONFIG: config,
    });
    expect(badFile.code).toBe(1);
    expect(badFile.stderr).toMatch(/host config .*: deltaMaxWindow: Too big/);
    expect(badFile.stderr).not.toMatch(/\n\s+at /);
  });

  it("--delta auto weighs the rebuild against the full download with what this host measured", async () => {
    const speeds = (rebuild: number, download: number) =>
      `${JSON.stringify({ schemaVersion: 1, rebuild: { "tar.zst": rebuild }, download: { [r.url]: download } })}\n`;
    const pullAuto = (cache: string) =>
      templar(["pull", `${NAME}@1.1.0`, "--registry", r.url, "--dest", cache, "--format", "zst"], {
        TEMPLAR_DELTA: "auto",
      });
    const origin = async (cache: string) =>
      JSON.parse(await readFile(join(cache, ".templar", `${NAME}.tar.zst.origin.json`), "utf8"));

    // A host that measured its link at 1 GB/s (a full download) and rebuilds at 1 MB/s downloads
    // the full artifact, without fetching the patch.
    const slowHost = await cacheWithV1("auto-slow", "zst");
    await writeFile(join(slowHost, ".templar", "speeds.json"), speeds(1e6, 1e9));
    const full = await pullAuto(slowHost);
    expect(full.code, full.stderr).toBe(0);
    expect(full.stderr).toMatch(
      /no delta: rebuilding .* of tar takes about \d+\.\d s here \(as this host last measured\), the full .* at .*\/s \(the last full download from this registry\)/,
    );
    expect((await origin(slowHost)).via).toBe("full");
    expect(await stateLeftovers(slowHost)).toEqual([]);

    // A fast rebuilder on a slow link takes the patch, and keeps what the rebuild measured.
    const fastHost = await cacheWithV1("auto-fast", "zst");
    await writeFile(join(fastHost, ".templar", "speeds.json"), speeds(1e12, 1e5));
    const delta = await pullAuto(fastHost);
    expect(delta.code, delta.stderr).toBe(0);
    expect((await origin(fastHost)).via).toBe("delta");
    const after = JSON.parse(await readFile(join(fastHost, ".templar", "speeds.json"), "utf8"));
    expect(after.rebuild["tar.zst"]).toBeGreaterThan(0);
    expect(after.rebuild["tar.zst"]).toBeLessThan(1e12);

    // With no full download measured, the patch measures the link: then left for the full
    // artifact when the rebuild would take longer, its bytes counted.
    const unmeasured = await cacheWithV1("auto-live", "zst");
    await writeFile(
      join(unmeasured, ".templar", "speeds.json"),
      `${JSON.stringify({ schemaVersion: 1, rebuild: { "tar.zst": 1 }, download: {} })}\n`,
    );
    const live = await templar(
      ["pull", `${NAME}@1.1.0`, "--registry", r.url, "--dest", unmeasured, "--format", "zst", "--json"],
      { TEMPLAR_DELTA: "auto" },
    );
    expect(live.code, live.stderr).toBe(0);
    const result = JSON.parse(live.stdout);
    expect(result.via).toBe("full");
    const index = DeltaIndexSchema.parse(
      await (await fetch(`${r.url}/v1/templates/${NAME}/1.1.0/deltas`)).json(),
    );
    expect(result.transferred).toBe(result.size + index.deltas[0]!.size);
    expect(await stateLeftovers(unmeasured)).toEqual([]);
    expect(tarSha(join(unmeasured, `${NAME}.tar.zst`), "tar.zst")).toBe(v2.manifest.rootfs.tarSha256);
  });

  it("a patch needing a larger window than allowed is refused, with the full download instead", async () => {
    const cache = await cacheWithV1("window");
    const res = await templar([
      "pull",
      `${NAME}@1.1.0`,
      "--registry",
      r.url,
      "--dest",
      cache,
      "--delta-max-window",
      "20",
    ]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stderr).toMatch(/needs a 2\^\d+-byte zstd window, over this host's limit of 2\^20/);
    expect(tarSha(join(cache, `${NAME}.tar.gz`), "tar.gz")).toBe(v2.manifest.rootfs.tarSha256);
  });

  it("a corrupt patch falls back to the full download, which ends verified with nothing left over", async () => {
    const cache = await cacheWithV1("corrupt");
    const blob = join(r.storageDir, "blobs", "sha256", patchDigest.slice(7));
    const original = await readFile(blob);
    const flipped = Buffer.from(original);
    flipped[Math.floor(flipped.length / 2)]! ^= 0xff;
    await writeFile(blob, flipped);
    try {
      const res = await templar(["pull", `${NAME}@1.1.0`, "--registry", r.url, "--dest", cache, "--json"]);
      expect(res.code, res.stderr).toBe(0);
      const result = JSON.parse(res.stdout);
      expect(result.via).toBe("full");
      const bytes = await readFile(join(cache, `${NAME}.tar.gz`));
      expect(`sha256:${sha256(bytes)}`).toBe(result.digest);
      expect(tarSha(join(cache, `${NAME}.tar.gz`), "tar.gz")).toBe(v2.manifest.rootfs.tarSha256);
      expect(await stateLeftovers(cache)).toEqual([]);
      const origin = JSON.parse(
        await readFile(join(cache, ".templar", `${NAME}.tar.gz.origin.json`), "utf8"),
      );
      expect(origin.via).toBe("full");
      expect(origin.local).toBeUndefined();
    } finally {
      await writeFile(blob, original);
    }
  });

  it("a host whose compressor writes other bytes than the builder's checks the tar inside instead", async () => {
    const cache = await cacheWithV1("other-compressor");
    // This host has gzip but not pigz: the rebuilt file cannot be the registry's bytes.
    const bin = join(dir, "bin-without-pigz");
    await mkdir(bin, { recursive: true });
    for (const tool of ["zstd", "gzip"])
      await symlink(
        execFileSync("sh", ["-c", `command -v ${tool}`], { encoding: "utf8" }).trim(),
        join(bin, tool),
      );
    const res = await templar(["pull", `${NAME}@1.1.0`, "--registry", r.url, "--dest", cache, "--json"], {
      PATH: bin,
    });
    expect(res.code, res.stderr).toBe(0);
    expect(JSON.parse(res.stdout).via).toBe("delta");
    const file = join(cache, `${NAME}.tar.gz`);
    const bytes = await readFile(file);
    const artifact = v2.manifest.artifacts.find((a) => a.format === "tar.gz")!;
    expect(`sha256:${sha256(bytes)}`).not.toBe(artifact.digest);
    expect(tarSha(file, "tar.gz")).toBe(v2.manifest.rootfs.tarSha256);
    const origin = JSON.parse(await readFile(join(cache, ".templar", `${NAME}.tar.gz.origin.json`), "utf8"));
    expect(origin.local).toEqual({ digest: `sha256:${sha256(bytes)}`, size: bytes.length });
    expect(await stateLeftovers(cache)).toEqual([]);
  });

  it("a well-formed patch that makes another tar than the signed one is refused", async () => {
    const cache = await cacheWithV1("other-tar");
    // A valid patch from 1.0.0's tar to a tar of the right size with one byte changed.
    const fromTar = join(dir, "other-from.tar");
    const otherTar = join(dir, "other.tar");
    await writeFile(fromTar, execFileSync("gzip", ["-dc", v1.gz], { maxBuffer: 1 << 28 }));
    const tar = execFileSync("gzip", ["-dc", v2.gz], { maxBuffer: 1 << 28 });
    tar[Math.floor(tar.length / 2)]! ^= 0x01;
    await writeFile(otherTar, tar);
    const index = (await r.store.deltas.get(NAME, "1.1.0"))!;
    const entry = index.deltas[0]!;
    const patch = execFileSync(
      "zstd",
      ["-q", `--long=${entry.windowLog}`, `--patch-from=${fromTar}`, "-c", otherTar],
      {
        maxBuffer: 1 << 28,
      },
    );
    const hex = sha256(patch);
    await r.store.blobs.put(hex, Readable.from([patch]));
    await r.store.deltas.put({
      ...index,
      deltas: [{ ...entry, digest: `sha256:${hex}`, size: patch.length }],
    });
    try {
      const res = await templar(["pull", `${NAME}@1.1.0`, "--registry", r.url, "--dest", cache]);
      expect(res.code, res.stderr).toBe(0);
      expect(res.stderr).toContain("the patched tar has sha256:");
      const origin = JSON.parse(
        await readFile(join(cache, ".templar", `${NAME}.tar.gz.origin.json`), "utf8"),
      );
      expect(origin.via).toBe("full");
      expect(tarSha(join(cache, `${NAME}.tar.gz`), "tar.gz")).toBe(v2.manifest.rootfs.tarSha256);
      expect(await stateLeftovers(cache)).toEqual([]);
    } finally {
      await r.store.deltas.put(index);
    }
  });

  it("a cached file that no longer unpacks to its recorded tar is not patched", async () => {
    const cache = await cacheWithV1("changed");
    // Same size, other bytes: the patch must not be applied to it.
    const file = join(cache, `${NAME}.tar.gz`);
    const bytes = await readFile(file);
    bytes[bytes.length - 20]! ^= 0x55;
    await writeFile(file, bytes);
    const res = await templar(["pull", `${NAME}@1.1.0`, "--registry", r.url, "--dest", cache, "--json"]);
    expect(res.code, res.stderr).toBe(0);
    expect(JSON.parse(res.stdout).via).toBe("full");
    expect(tarSha(file, "tar.gz")).toBe(v2.manifest.rootfs.tarSha256);
    expect(await stateLeftovers(cache)).toEqual([]);
  });
});
