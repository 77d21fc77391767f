import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RegistryClient, RegistryError } from "../../client/http.js";
import { uploadBlob } from "../../client/upload.js";
import { parseDigest } from "../../common/digest.js";
import { startCutProxy } from "../helpers/cut-proxy.js";
import { createToken, type RegistryProcess, startRegistry, templar } from "../helpers/registry-process.js";
import { haveTools } from "../helpers/require-tool.js";
import { makeTree, type PackedTemplate, packTemplate } from "../helpers/template-fixture.js";

/**
 * The clients end to end against a real `templar serve` process on 127.0.0.1:0: push, pull by
 * range, immutability, resume of cut downloads and uploads, corruption, and token scopes.
 */
const ready = haveTools("tar", "gzip", "zstd");
// These templates are unsigned; signature checks are tested in test/compat/trust.test.ts.
process.env.TEMPLAR_ALLOW_UNSIGNED = "1";

function randomBetween(min: number, max: number): number {
  return min + Math.floor(Math.random() * (max - min));
}

/** The error lines of a run's stderr (progress lines are not errors). */
function errorLines(stderr: string): string[] {
  return stderr.split("\n").filter((l) => l.startsWith("templar:"));
}

/** Proxy budgets: the first `n` connections are cut at a random byte count, later ones pass. */
function cutFirst(n: number, min: number, max: number): () => number | null {
  let left = n;
  return () => (left-- > 0 ? randomBetween(min, max) : null);
}

describe.skipIf(!ready)("templar push / pull / list against templar serve", () => {
  let dir: string;
  let storage: string;
  let registry: RegistryProcess;
  let pushToken: string;
  let pullToken: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "templar-client-"));
    storage = join(dir, "storage");
    const config = join(dir, "registry.yaml");
    // No periodic GC while the tests run.
    await writeFile(config, "gc:\n  interval: 0\n");
    pushToken = createToken(config, "push:*", "pull:*");
    pullToken = createToken(config, "pull:*");
    registry = await startRegistry(storage, config);
  });

  afterAll(async () => {
    await registry?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function packed(name: string, version: string, kib: number, seed = name): Promise<PackedTemplate> {
    const tree = join(dir, `tree-${name}-${version}-${seed}`);
    await makeTree(tree, kib, seed);
    return packTemplate(tree, join(dir, `out-${name}-${version}-${seed}`), name, version);
  }

  const push = (input: string, url = registry.url, env: Record<string, string> = {}) =>
    templar(["push", input, "--registry", url], { TEMPLAR_TOKEN: pushToken, ...env });

  it("pushes a packed template, pulls it by range, and the bytes are identical", async () => {
    const t = await packed("test-1-x86_64", "1.2.0", 256);
    const first = await push(t.outDir);
    expect(first.stderr).not.toContain(pushToken);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain("pushed test-1-x86_64@1.2.0");

    const again = await push(t.outDir);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain("nothing to do");

    const cache = join(dir, "cache-range");
    const pulled = await templar([
      "pull",
      "test-1-x86_64@^1",
      "--registry",
      registry.url,
      "--dest",
      cache,
      "--json",
    ]);
    expect(pulled.code, pulled.stderr).toBe(0);
    const result = JSON.parse(pulled.stdout) as { version: string; path: string; upToDate: boolean };
    expect(result).toMatchObject({
      version: "1.2.0",
      upToDate: false,
      path: join(cache, "test-1-x86_64.tar.gz"),
    });
    expect((await readFile(result.path)).equals(await readFile(t.gz))).toBe(true);
    // The manifest is kept beside it, byte for byte, and no temporary file is left.
    const state = await readdir(join(cache, ".templar"));
    expect(state.sort()).toEqual(["test-1-x86_64.tar.gz.manifest.json", "test-1-x86_64.tar.gz.origin.json"]);
    const kept = await readFile(join(cache, ".templar", "test-1-x86_64.tar.gz.manifest.json"));
    expect(kept.equals(await readFile(t.manifestPath))).toBe(true);

    const second = await templar([
      "pull",
      "test-1-x86_64",
      "--registry",
      registry.url,
      "--dest",
      cache,
      "--json",
    ]);
    expect(second.code, second.stderr).toBe(0);
    expect(JSON.parse(second.stdout)).toMatchObject({ upToDate: true, version: "1.2.0" });

    const zst = await templar([
      "pull",
      "test-1-x86_64@1.2.0",
      "--format",
      "zst",
      "--registry",
      registry.url,
      "--dest",
      cache,
    ]);
    expect(zst.code, zst.stderr).toBe(0);
    expect((await stat(join(cache, "test-1-x86_64.tar.zst"))).size).toBe(
      t.manifest.artifacts.find((a) => a.format === "tar.zst")!.size,
    );

    const local = await templar(["list", "--dest", cache, "--json"]);
    expect(local.code, local.stderr).toBe(0);
    expect(JSON.parse(local.stdout)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: "test-1-x86_64", version: "1.2.0", present: true }),
      ]),
    );
    const remote = await templar(["list", "--remote", "--registry", registry.url, "--json"]);
    expect(remote.code, remote.stderr).toBe(0);
    expect(JSON.stringify(JSON.parse(remote.stdout))).toContain("test-1-x86_64");

    const missing = await templar(["pull", "test-1-x86_64@^2", "--registry", registry.url, "--dest", cache]);
    expect(missing.code).toBe(4);
    expect(missing.stderr.trim().split("\n")).toHaveLength(1);
    expect(missing.stderr).toMatch(/registry said 404/);
  });

  it("refuses the same version with other content (409) and changes nothing", async () => {
    const original = await packed("test-immutable", "1.0.0", 64, "a");
    expect((await push(original.outDir)).code).toBe(0);
    const manifestUrl = `${registry.url}/v1/templates/test-immutable/1.0.0`;
    const before = Buffer.from(await (await fetch(manifestUrl)).arrayBuffer());

    const other = await packed("test-immutable", "1.0.0", 64, "b");
    const refused = await push(other.outDir);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/already has 1\.0\.0 with other content.*immutable/);
    const otherGz = other.manifest.artifacts.find((a) => a.format === "tar.gz")!;
    expect((await fetch(`${registry.url}/v1/blobs/${otherGz.digest}`, { method: "HEAD" })).status).toBe(404);

    // The registry's own answer, when a client uploads the blobs and PUTs anyway: 409 as one line.
    const client = new RegistryClient({ registry: registry.url, token: pushToken });
    for (const artifact of other.manifest.artifacts) {
      const file = join(other.outDir, `test-immutable-1.0.0.${artifact.format}`);
      await uploadBlob(client, { file, size: artifact.size, digest: artifact.digest, what: "test" });
    }
    const error = await client
      .request("PUT", "v1/templates/test-immutable/1.0.0", { body: await readFile(other.manifestPath) })
      .catch((err: unknown) => err);
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as RegistryError).status).toBe(409);
    expect((error as Error).message).toMatch(/^registry said 409 \w+: .+/);
    expect((error as Error).message).not.toContain(pushToken);

    const after = Buffer.from(await (await fetch(manifestUrl)).arrayBuffer());
    expect(after.equals(before)).toBe(true);
    expect(after.equals(await readFile(original.manifestPath))).toBe(true);
  });

  it("finishes a pull whose connection is cut several times, by resuming", async () => {
    const t = await packed("test-cut-pull", "1.0.0", 3 * 1024);
    expect((await push(t.outDir)).code).toBe(0);
    const proxy = await startCutProxy(registry.port, { downstream: cutFirst(5, 20_000, 500_000) });
    try {
      const cache = join(dir, "cache-cut");
      const pulled = await templar(["pull", "test-cut-pull@^1.0", "--registry", proxy.url, "--dest", cache], {
        TEMPLAR_RETRIES: "8",
      });
      expect(pulled.code, pulled.stderr).toBe(0);
      expect(proxy.cuts).toBeGreaterThanOrEqual(3);
      expect((await readFile(join(cache, "test-cut-pull.tar.gz"))).equals(await readFile(t.gz))).toBe(true);
      // Resumed with Range, not restarted: the registry answered 206 at least once.
      expect(registry.log.some((l) => l.includes('"status":206'))).toBe(true);
    } finally {
      await proxy.close();
    }
  });

  it("keeps an interrupted pull out of the final name and resumes it on the next run", async () => {
    const t = await packed("test-resume-later", "1.0.0", 2 * 1024);
    expect((await push(t.outDir)).code).toBe(0);
    const cache = join(dir, "cache-later");
    // The first connection breaks inside the blob; every later one inside the headers: no progress.
    let connections = 0;
    const proxy = await startCutProxy(registry.port, {
      downstream: () => (connections++ === 0 ? randomBetween(100_000, 400_000) : 100),
    });
    try {
      const failed = await templar(["pull", "test-resume-later", "--registry", proxy.url, "--dest", cache], {
        TEMPLAR_RETRIES: "2",
      });
      expect(failed.code).toBe(1);
      expect(failed.stderr).toMatch(/run the same command again to resume/);
    } finally {
      await proxy.close();
    }
    await expect(stat(join(cache, "test-resume-later.tar.gz"))).rejects.toThrow();
    const partials = (await readdir(join(cache, ".templar"))).filter((f) => f.endsWith(".partial"));
    expect(partials).toHaveLength(1);
    const kept = (await stat(join(cache, ".templar", partials[0]!))).size;
    expect(kept).toBeGreaterThan(0);

    const resumed = await templar(["pull", "test-resume-later", "--registry", registry.url, "--dest", cache]);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect((await readFile(join(cache, "test-resume-later.tar.gz"))).equals(await readFile(t.gz))).toBe(true);
    expect((await readdir(join(cache, ".templar"))).filter((f) => f.endsWith(".partial"))).toEqual([]);
  });

  it("detects a blob corrupted in the registry's storage and leaves nothing behind", async () => {
    const t = await packed("test-corrupt", "1.0.0", 512);
    expect((await push(t.outDir)).code).toBe(0);
    const gz = t.manifest.artifacts.find((a) => a.format === "tar.gz")!;
    const blob = join(storage, "blobs", "sha256", parseDigest(gz.digest)!);
    const bytes = await readFile(blob);
    bytes[bytes.length >> 1]! ^= 0xff;
    await writeFile(blob, bytes);

    const cache = join(dir, "cache-corrupt");
    const pulled = await templar(["pull", "test-corrupt", "--registry", registry.url, "--dest", cache]);
    expect(pulled.code).toBe(3);
    expect(pulled.stderr).toMatch(/sha256:[0-9a-f]{64}.*manifest says/);
    expect(errorLines(pulled.stderr)).toHaveLength(1);
    expect(await readdir(cache)).toEqual([]);
  });

  it("resumes an upload whose connection is cut", async () => {
    const t = await packed("test-cut-push", "1.0.0", 3 * 1024);
    const proxy = await startCutProxy(registry.port, { upstream: cutFirst(4, 200_000, 900_000) });
    try {
      const pushed = await push(t.outDir, proxy.url, {
        TEMPLAR_UPLOAD_CHUNK: String(1 << 20),
        TEMPLAR_RETRIES: "8",
      });
      expect(pushed.code, pushed.stderr).toBe(0);
      expect(proxy.cuts).toBeGreaterThanOrEqual(2);
    } finally {
      await proxy.close();
    }
    const cache = join(dir, "cache-cut-push");
    const pulled = await templar([
      "pull",
      "test-cut-push@1.0.0",
      "--registry",
      registry.url,
      "--dest",
      cache,
    ]);
    expect(pulled.code, pulled.stderr).toBe(0);
    expect((await readFile(join(cache, "test-cut-push.tar.gz"))).equals(await readFile(t.gz))).toBe(true);
  });

  it("refuses a push without a token or with a pull-only token, in one clear line", async () => {
    const t = await packed("test-auth", "1.0.0", 16);
    const anonymous = await push(t.outDir, registry.url, { TEMPLAR_TOKEN: "" });
    expect(anonymous.code).toBe(1);
    expect(anonymous.stderr.trim().split("\n")).toHaveLength(1);
    expect(anonymous.stderr).toMatch(/registry said 401 .*no token/);

    const pullOnly = await push(t.outDir, registry.url, { TEMPLAR_TOKEN: pullToken });
    expect(pullOnly.code).toBe(1);
    expect(pullOnly.stderr.trim().split("\n")).toHaveLength(1);
    expect(pullOnly.stderr).toMatch(/registry said 403 .*scope/);
    expect(pullOnly.stderr).not.toContain(pullToken);

    expect((await fetch(`${registry.url}/v1/templates/test-auth/1.0.0`)).status).toBe(404);
    expect(registry.log.join("\n")).not.toContain(pullToken);
    expect(registry.log.join("\n")).not.toContain(pushToken);
  });

  it("pushes the manifest's gpg signature and pull keeps it beside the manifest", async (ctx) => {
    if (!haveTools("gpg", "gpgconf")) return ctx.skip();
    const t = await packed("test-signed", "1.0.0", 16);
    const gnupg = join(dir, "gnupg");
    await mkdir(gnupg, { mode: 0o700 });
    const gpg = (...args: string[]) =>
      execFileSync(
        "gpg",
        ["--homedir", gnupg, "--batch", "--pinentry-mode", "loopback", "--passphrase", "", ...args],
        {
          stdio: "pipe",
        },
      );
    const keyring = join(dir, "test-signed.pub.asc");
    try {
      gpg("--quick-gen-key", "templar test <test@example.invalid>", "ed25519", "sign", "1d");
      gpg("--armor", "--detach-sign", "--output", `${t.manifestPath}.asc`, t.manifestPath);
      gpg("--armor", "--output", keyring, "--export", "test@example.invalid");
    } finally {
      execFileSync("gpgconf", ["--homedir", gnupg, "--kill", "all"]);
    }
    const pushed = await push(t.outDir);
    expect(pushed.code, pushed.stderr).toBe(0);
    const served = Buffer.from(
      await (await fetch(`${registry.url}/v1/templates/test-signed/1.0.0/signature`)).arrayBuffer(),
    );
    expect(served.equals(await readFile(`${t.manifestPath}.asc`))).toBe(true);

    const cache = join(dir, "cache-signed");
    // A present signature is checked even with --allow-unsigned (set for this file): the keyring is needed.
    const pulled = await templar([
      "pull",
      "test-signed",
      "--registry",
      registry.url,
      "--dest",
      cache,
      "--keyring",
      keyring,
    ]);
    expect(pulled.code, pulled.stderr).toBe(0);
    const kept = join(cache, ".templar", "test-signed.tar.gz.manifest.json");
    expect((await readFile(`${kept}.asc`)).equals(served)).toBe(true);
    // What was kept verifies with stock gpg against the signer's key.
    try {
      execFileSync("gpg", ["--homedir", gnupg, "--batch", "--verify", `${kept}.asc`, kept], {
        stdio: "pipe",
      });
    } finally {
      execFileSync("gpgconf", ["--homedir", gnupg, "--kill", "all"]);
    }
  });

  it("lets one pull at a time write a cache file, and takes over a dead pull's lock", async () => {
    const t = await packed("test-lock", "1.0.0", 16);
    expect((await push(t.outDir)).code).toBe(0);
    const cache = join(dir, "cache-lock");
    await mkdir(join(cache, ".templar"), { recursive: true });
    const lock = join(cache, ".templar", "test-lock.tar.gz.lock");
    await writeFile(lock, `${process.pid}\n`); // a live process holds it
    const busy = await templar(["pull", "test-lock", "--registry", registry.url, "--dest", cache]);
    expect(busy.code).toBe(1);
    expect(busy.stderr).toMatch(/another templar pull \(pid \d+\) is writing/);
    await expect(stat(join(cache, "test-lock.tar.gz"))).rejects.toThrow();

    await writeFile(lock, "2147483646\n"); // no such process
    const taken = await templar(["pull", "test-lock", "--registry", registry.url, "--dest", cache]);
    expect(taken.code, taken.stderr).toBe(0);
    expect((await readFile(join(cache, "test-lock.tar.gz"))).equals(await readFile(t.gz))).toBe(true);
    await expect(stat(lock)).rejects.toThrow();
  });

  it("explains bad input in one line: no registry, bad reference, missing artifact", async () => {
    const noRegistry = await templar(["pull", "test-1-x86_64"]);
    expect(noRegistry.code).toBe(2);
    expect(noRegistry.stderr).toMatch(/no registry/);
    const badRef = await templar(["pull", "Bad/Name@^1", "--registry", registry.url]);
    expect(badRef.code).toBe(2);
    expect(badRef.stderr).toMatch(/template name/);
    const t = await packed("test-missing-file", "1.0.0", 8);
    await rm(t.gz);
    const pushed = await push(t.outDir);
    expect(pushed.code).toBe(4);
    expect(pushed.stderr).toMatch(/test-missing-file-1\.0\.0\.tar\.gz is not next to it/);
  });
});
