import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseDigest } from "../../common/digest.js";
import { generateKey, type Keys, type Packed, packRootfs, pullSigned } from "../compat/fixture.js";
import { createToken, type RegistryProcess, startRegistry, templar } from "../helpers/registry-process.js";
import { haveTools } from "../helpers/require-tool.js";

/**
 * `templar mirror` end to end: a real `templar serve` as the source, signed templates pushed by
 * `templar push`, mirrored into directories (then served and pulled with signature checks) and
 * into another `templar serve` through its API.
 */
const ready = haveTools("tar", "gzip", "zstd");

describe.skipIf(!ready)("templar mirror", () => {
  let dir: string;
  let sourceStorage: string;
  let source: RegistryProcess;
  let key: Keys;
  const packed = new Map<string, Packed>();
  const registries: RegistryProcess[] = [];

  /** A registry config with no periodic GC, and a push+pull token made for it. */
  async function registryConfig(name: string): Promise<{ config: string; token: string }> {
    const config = join(dir, `${name}.yaml`);
    await writeFile(config, "gc:\n  interval: 0\n");
    return { config, token: createToken(config, "push:*", "pull:*") };
  }

  async function serve(storage: string, name: string): Promise<{ url: string; token: string }> {
    const { config, token } = await registryConfig(name);
    const registry = await startRegistry(storage, config);
    registries.push(registry);
    return { url: registry.url, token };
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "templar-mirror-"));
    key = await generateKey(join(dir, "maintainer"), "Test Maintainer");
    sourceStorage = join(dir, "source");
    const { config, token } = await registryConfig("source");
    source = await startRegistry(sourceStorage, config);
    registries.push(source);
    const versions: [string, string][] = [
      ["mirror-a-x86_64", "1.0.0"],
      ["mirror-a-x86_64", "1.1.0"],
      ["mirror-a-x86_64", "2.0.0-rc.1"],
      ["other-b-x86_64", "1.0.0"],
    ];
    for (const [name, version] of versions) {
      const p = await packRootfs(dir, name, version, { signKey: key.secret, epoch: 1_700_000_000 });
      packed.set(`${name}@${version}`, p);
      const pushed = await templar(["push", p.outDir, "--registry", source.url, "--token", token]);
      expect(pushed.code, pushed.stderr).toBe(0);
    }
    const res = await fetch(`${source.url}/v1/templates/mirror-a-x86_64/tags/stable`, {
      method: "PUT",
      headers: { authorization: `Bearer ${token}` },
      body: "1.0.0",
    });
    expect(res.status).toBe(200);
  }, 120_000);

  afterAll(async () => {
    await Promise.all(registries.map((r) => r.stop()));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const sourceObject = (key: string) => readFile(join(sourceStorage, key));

  it("copies versions, signatures and tags into a directory that templar serve then serves", async () => {
    const dest = join(dir, "mirror-dir");
    const first = await templar(["mirror", source.url, dest]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain(
      "2 template(s), 4 version(s) copied, 0 already there, 0 failed, 1 tag(s) set",
    );

    // Manifests and every signature byte for byte; blobs under their digest; the explicit tag.
    for (const [ref, p] of packed) {
      const [name, version] = ref.split("@") as [string, string];
      const base = `templates/${name}/versions/${version}`;
      for (const suffix of [".json", ".json.asc", ".tar.gz.asc", ".tar.zst.asc"]) {
        expect((await readFile(join(dest, base + suffix))).equals(await sourceObject(base + suffix))).toBe(
          true,
        );
      }
      for (const artifact of p.manifest.artifacts) {
        const blob = join(dest, "blobs", "sha256", parseDigest(artifact.digest)!);
        expect((await stat(blob)).size).toBe(artifact.size);
      }
    }
    expect(await readFile(join(dest, "templates/mirror-a-x86_64/tags/stable"), "utf8")).toBe("1.0.0\n");
    // `latest` stays implicit (the highest release), so it follows versions mirrored later.
    expect(await readdir(join(dest, "templates/mirror-a-x86_64/tags"))).toEqual(["stable"]);

    // A host pulls from the mirror and the maintainer's signature verifies there.
    const mirror = await serve(dest, "mirror-dir");
    const cache = join(dir, "cache");
    const pulled = await pullSigned(mirror.url, "mirror-a-x86_64@stable", cache, key.public);
    expect(pulled.code, pulled.stderr).toBe(0);
    const gz = await readFile(join(cache, "mirror-a-x86_64.tar.gz"));
    expect(gz.equals(await readFile(packed.get("mirror-a-x86_64@1.0.0")!.file("tar.gz")))).toBe(true);

    // In sync already: nothing is fetched again.
    const again = await templar(["mirror", source.url, dest, "--json"]);
    expect(again.code, again.stderr).toBe(0);
    const lines = again.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.slice(0, -1).map((l) => [l.status, l.blobs])).toEqual(Array(4).fill(["present", 0]));
    expect(lines.at(-1)).toMatchObject({ templates: 2, failed: 0 });
  });

  it("--filter picks templates and --keep the newest versions", async () => {
    const dest = join(dir, "mirror-keep");
    const r = await templar(["mirror", source.url, dest, "--filter", "mirror-a-*", "--keep", "2", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const versions = await readdir(join(dest, "templates/mirror-a-x86_64/versions"));
    expect(versions.filter((f) => f.endsWith(".json")).sort()).toEqual(["1.1.0.json", "2.0.0-rc.1.json"]);
    await expect(stat(join(dest, "templates/other-b-x86_64"))).rejects.toThrow();
    // `stable` points at 1.0.0, which this mirror does not keep: the tag is not copied.
    await expect(stat(join(dest, "templates/mirror-a-x86_64/tags/stable"))).rejects.toThrow();
  });

  it("copies into another registry through its API, with the destination's token", async () => {
    const target = await serve(join(dir, "second"), "second");
    const noToken = await templar(["mirror", source.url, target.url, "--filter", "other-*"]);
    expect(noToken.code).not.toBe(0);
    expect(noToken.stderr).toMatch(/401|token/i);

    const r = await templar(["mirror", source.url, target.url, "--token", target.token]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toContain(target.token);
    expect(r.stdout).toContain("4 version(s) copied");
    const listing = (await (await fetch(`${target.url}/v1/templates/mirror-a-x86_64`)).json()) as {
      tags: Record<string, string>;
      versions: { version: string; signed: boolean }[];
    };
    expect(listing.versions.map((v) => [v.version, v.signed])).toEqual([
      ["2.0.0-rc.1", true],
      ["1.1.0", true],
      ["1.0.0", true],
    ]);
    expect(listing.tags).toEqual({ stable: "1.0.0", latest: "1.1.0" });
    const sig = await fetch(`${target.url}/v1/templates/mirror-a-x86_64/1.1.0/signature/tar.gz`);
    expect(Buffer.from(await sig.arrayBuffer())).toEqual(
      await sourceObject("templates/mirror-a-x86_64/versions/1.1.0.tar.gz.asc"),
    );

    const again = await templar(["mirror", source.url, target.url, "--token", target.token]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain("0 version(s) copied, 4 already there");
  });

  it("reports a version the destination has with other content and copies the rest", async () => {
    const dest = join(dir, "mirror-conflict");
    const key = "templates/other-b-x86_64/versions/1.0.0.json";
    await mkdir(join(dest, "templates/other-b-x86_64/versions"), { recursive: true });
    await writeFile(join(dest, key), "{}");
    const r = await templar(["mirror", source.url, dest]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("other-b-x86_64@1.0.0");
    expect(r.stderr).toContain("other content");
    expect(r.stdout).toContain("3 version(s) copied, 0 already there, 1 failed");
    expect(await readFile(join(dest, key), "utf8")).toBe("{}");
  });

  it("refuses bad input with one line and exit code 2", async () => {
    const cases: [string[], RegExp][] = [
      [["mirror", source.url], /expected <source-registry> <destination>/],
      [["mirror", source.url, join(dir, "x"), "--keep", "0"], /--keep "0" is not a whole number/],
      [["mirror", "ftp://example.invalid", join(dir, "x")], /must start with http/],
      [["mirror", source.url, "gopher://bucket/x"], /unknown scheme gopher/],
    ];
    for (const [args, message] of cases) {
      const r = await templar(args);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toMatch(message);
    }
  });

  it("writes nothing for a source that lists names, versions or tags outside the layout", async () => {
    const answers: Record<string, unknown>[] = [
      { templates: [{ name: "../escape" }] },
      { templates: [{ name: "evil-x86_64" }], tags: { "../../../../tmp/x": "1.0.0" }, versions: [] },
      { templates: [{ name: "evil-x86_64" }], tags: {}, versions: [{ version: "../1.0.0" }] },
    ];
    for (const answer of answers) {
      const server = createServer((req, res) => {
        res.setHeader("content-type", "application/json");
        const body = req.url === "/v1/templates" ? { templates: answer.templates } : answer;
        res.end(JSON.stringify(body));
      });
      await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const dest = join(dir, "mirror-evil");
      const r = await templar(["mirror", url, dest]);
      server.close();
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/lists .* as a template name|as a version|invalid tag/);
      expect(await readdir(dest).catch(() => [])).not.toContain("templates");
    }
  });

  // Last: it corrupts the source.
  it("never publishes a version whose blob does not match its digest", async () => {
    const bad = packed.get("mirror-a-x86_64@1.1.0")!.manifest.artifacts[0]!;
    const blob = join(sourceStorage, "blobs", "sha256", parseDigest(bad.digest)!);
    const bytes = await readFile(blob);
    bytes[bytes.length >> 1] = bytes[bytes.length >> 1]! ^ 0xff;
    await writeFile(blob, bytes);
    const dest = join(dir, "mirror-corrupt");
    const before = (await readdir(tmpdir())).filter((f) => f.startsWith("templar-mirror-"));
    const r = await templar(["mirror", source.url, dest, "--filter", "mirror-a-*"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("mirror-a-x86_64@1.1.0");
    expect(r.stderr).toMatch(/sha256|digest/);
    expect(r.stdout).toContain("2 version(s) copied, 0 already there, 1 failed");
    const versions = await readdir(join(dest, "templates/mirror-a-x86_64/versions"));
    expect(versions.filter((f) => f.startsWith("1.1.0"))).toEqual([]);
    await expect(stat(join(dest, "blobs", "sha256", parseDigest(bad.digest)!))).rejects.toThrow();
    // No download is left behind in the temporary directory either.
    const after = (await readdir(tmpdir())).filter((f) => f.startsWith("templar-mirror-"));
    expect(after.sort()).toEqual(before.sort());
  });
});
