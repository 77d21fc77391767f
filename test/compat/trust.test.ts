import { spawnSync } from "node:child_process";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseDigest } from "../../common/digest.js";
import { proxmoxFileName } from "../../common/manifest-files.js";
import { layout as keys } from "../../registry/store/layout.js";
import { templar } from "../helpers/registry-process.js";
import { haveTools } from "../helpers/require-tool.js";
import {
  type CompatRegistry,
  generateKey,
  gpgHome,
  type Keys,
  type Packed,
  packRootfs,
  pullSigned,
  push,
  startCompatRegistry,
} from "./fixture.js";

/**
 * Signatures end to end with real gpg and sqv: what `templar pack --sign-key` makes verifies
 * with stock tools; `templar pull` refuses unsigned, tampered and untrusted templates and leaves
 * nothing at the destination; a registry with a push policy refuses such pushes.
 */
const ready = haveTools("gpg", "sqv", "tar", "gzip", "zstd");

/** Files a host would see in the cache: everything except templar's hidden state directory. */
async function visible(dest: string): Promise<string[]> {
  const names = await readdir(dest).catch(() => [] as string[]);
  const state = await readdir(join(dest, ".templar")).catch(() => [] as string[]);
  return [...names.filter((n) => n !== ".templar"), ...state.map((s) => `.templar/${s}`)];
}

describe.skipIf(!ready)("trust: signatures from pack to pull", () => {
  let reg: CompatRegistry;
  let maintainer: Keys;
  let stranger: Keys;
  let signed: Packed;
  let n = 0;
  const dest = () => join(reg.dir, `cache-${++n}`);
  const pull = (ref: string, d: string, ...more: string[]) =>
    pullSigned(reg.url, ref, d, maintainer.public, ...more);

  beforeAll(async () => {
    reg = await startCompatRegistry();
    maintainer = await generateKey(join(reg.dir, "maintainer"), "Test Maintainer");
    stranger = await generateKey(join(reg.dir, "stranger"), "Stranger");
    signed = await packRootfs(reg.dir, "debian-13-x86_64-signed", "13.1.0", {
      signKey: maintainer.secret,
      epoch: 1_780_000_000,
    });
    await push(reg, signed.outDir);
  }, 60_000);
  afterAll(async () => reg?.close());

  it("pack --sign-key writes signatures that stock gpg --verify and sqv accept", async () => {
    const gpg = await gpgHome(reg.dir);
    expect(gpg("--import", maintainer.public).status).toBe(0);
    for (const file of [signed.manifestPath, signed.file("tar.gz"), signed.file("tar.zst")]) {
      const r = gpg("--verify", `${file}.asc`, file);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/Good signature/);
    }
    const binary = join(reg.dir, "maintainer.pub.gpg");
    expect(gpg("--output", binary, "--export", maintainer.fingerprint).status).toBe(0);
    const sqv = spawnSync("sqv", ["--keyring", binary, `${signed.manifestPath}.asc`, signed.manifestPath], {
      encoding: "utf8",
    });
    expect(sqv.status, sqv.stderr).toBe(0);
    expect(sqv.stdout.trim()).toBe(maintainer.fingerprint);
  });

  it("the registry serves what was pushed: manifest and artifact signatures, byte for byte", async () => {
    const base = `${reg.url}/v1/templates/debian-13-x86_64-signed/13.1.0/signature`;
    expect(await (await fetch(base)).text()).toBe(await readFile(`${signed.manifestPath}.asc`, "utf8"));
    expect(await (await fetch(`${base}/tar.gz`)).text()).toBe(
      await readFile(`${signed.file("tar.gz")}.asc`, "utf8"),
    );
    expect((await fetch(`${base}/tar.xz`)).status).toBe(404);
  });

  it("pulls a signed template and records who signed it", async () => {
    const d = dest();
    const r = await pull("debian-13-x86_64-signed@^13", d);
    expect(r.code, r.stderr).toBe(0);
    expect(
      (await readFile(join(d, "debian-13-x86_64-signed.tar.gz"))).equals(
        await readFile(signed.file("tar.gz")),
      ),
    ).toBe(true);
    const list = await templar(["list", "--dest", d, "--json"]);
    const entries = JSON.parse(list.stdout) as { name: string; version: string; verified: string }[];
    expect(entries).toMatchObject([
      {
        name: "debian-13-x86_64-signed",
        version: "13.1.0",
        verified: expect.stringMatching(new RegExp(`^signed by ${maintainer.fingerprint} \\(.+\\)$`)),
      },
    ]);
  });

  it("refuses an unsigned template unless --allow-unsigned, leaving nothing behind", async () => {
    const unsigned = await packRootfs(reg.dir, "debian-13-x86_64-unsigned", "13.1.0", {
      epoch: 1_780_000_000,
    });
    await push(reg, unsigned.outDir);
    const d = dest();
    const refused = await pull("debian-13-x86_64-unsigned", d);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/is not signed; refusing it \(pass --allow-unsigned/);
    expect(refused.stderr.trim().split("\n")).toHaveLength(1);
    expect(await visible(d)).toEqual([]);
    const allowed = await pull("debian-13-x86_64-unsigned", d, "--allow-unsigned");
    expect(allowed.code, allowed.stderr).toBe(0);
    expect(await visible(d)).toContain("debian-13-x86_64-unsigned.tar.gz");
  });

  it("refuses a template signed by a key that is not in the keyring", async () => {
    const other = await packRootfs(reg.dir, "debian-13-x86_64-stranger", "13.1.0", {
      signKey: stranger.secret,
      epoch: 1_780_000_000,
    });
    await push(reg, other.outDir);
    const d = dest();
    const r = await pull("debian-13-x86_64-stranger", d);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(
      /manifest signature: signed by key [0-9A-F]+, which is not in the trusted keyring/,
    );
    expect(await visible(d)).toEqual([]);
    // --allow-unsigned does not make a bad or untrusted signature acceptable.
    expect((await pull("debian-13-x86_64-stranger", d, "--allow-unsigned")).code).toBe(3);
    expect(await visible(d)).toEqual([]);
  });

  it("refuses a tampered manifest, a tampered signature and a tampered artifact", async () => {
    const name = "debian-13-x86_64-tamper";
    const t = await packRootfs(reg.dir, name, "13.1.0", { signKey: maintainer.secret, epoch: 1_780_000_000 });
    await push(reg, t.outDir);
    const manifestFile = join(reg.storageDir, keys.manifest(name, "13.1.0"));
    const signatureFile = join(reg.storageDir, keys.signature(name, "13.1.0"));
    const original = await readFile(manifestFile);
    // Storage is changed under the running registry: exact versions are always read from
    // storage (ranges and latest may use a listing cached for a moment).
    const originalSig = await readFile(signatureFile, "utf8");

    // The manifest changed in storage: one byte of its description.
    await writeFile(manifestFile, Buffer.from(original.toString("utf8").replace('"name"', '"name" ')));
    let d = dest();
    let r = await pull(`${name}@13.1.0`, d);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/manifest signature: BAD signature/);
    expect(await visible(d)).toEqual([]);
    await writeFile(manifestFile, original);

    // The signature replaced by one over other bytes (made by the trusted key itself).
    const otherSig = await readFile(`${signed.manifestPath}.asc`, "utf8");
    await writeFile(signatureFile, otherSig);
    d = dest();
    r = await pull(`${name}@13.1.0`, d);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/BAD signature/);
    expect(await visible(d)).toEqual([]);

    // The signature's bytes damaged.
    const lines = originalSig.split("\n");
    const body = lines.findIndex((l, i) => i > 1 && l.length > 40);
    lines[body] = lines[body]!.slice(0, 10) + (lines[body]![10] === "A" ? "B" : "A") + lines[body]!.slice(11);
    await writeFile(signatureFile, lines.join("\n"));
    d = dest();
    r = await pull(`${name}@13.1.0`, d);
    expect(r.code).toBe(3);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(await visible(d)).toEqual([]);
    await writeFile(signatureFile, originalSig);

    // The artifact changed in storage: the signature is fine, the digest is not.
    const gz = t.manifest.artifacts.find((a) => a.format === "tar.gz")!;
    const blob = join(reg.storageDir, "blobs", "sha256", parseDigest(gz.digest)!);
    const bytes = await readFile(blob);
    bytes[bytes.length >> 1]! ^= 0xff;
    await writeFile(blob, bytes);
    d = dest();
    r = await pull(`${name}@13.1.0`, d);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/sha256/);
    expect(await visible(d)).toEqual([]);
  });

  it("says which keyring is missing (exit 4, not found)", async () => {
    const d = dest();
    const r = await pullSigned(reg.url, "debian-13-x86_64-signed", d, join(reg.dir, "nope.asc"));
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/keyring .*nope\.asc: no such file/);
    expect(await visible(d)).toEqual([]);
  });

  it("--proxmox writes Proxmox's name and tar.zst; update replaces it with a newer version; prune removes it", async () => {
    const name = "debian-13-x86_64-pve";
    const v1 = await packRootfs(reg.dir, name, "13.1.0", {
      signKey: maintainer.secret,
      epoch: 1_780_000_000,
    });
    await push(reg, v1.outDir);
    const d = dest();
    const first = await pull(name, d, "--proxmox");
    expect(first.code, first.stderr).toBe(0);
    const file1 = proxmoxFileName(v1.manifest, "tar.zst");
    expect(file1).toBe(`${name}_13.1.0_amd64.tar.zst`);
    expect((await readFile(join(d, file1))).equals(await readFile(v1.file("tar.zst")))).toBe(true);

    // An OpenVZ cache with the same template, to check update --all handles both layouts.
    const ovz = dest();
    expect((await pull(name, ovz)).code).toBe(0);

    const v2 = await packRootfs(reg.dir, name, "13.2.0", {
      signKey: maintainer.secret,
      epoch: 1_780_100_000,
    });
    await push(reg, v2.outDir);
    const up = await templar(["update", "--all", "--dest", d, "--keyring", maintainer.public]);
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).toContain(`${name}: 13.1.0 -> 13.2.0`);
    const file2 = proxmoxFileName(v2.manifest, "tar.zst");
    expect(await visible(d)).toContain(file2);
    expect(await visible(d)).not.toContain(file1);
    const again = await templar(["update", "--all", "--dest", d, "--keyring", maintainer.public]);
    expect(again.stdout).toContain(`${name}: 13.2.0 is current`);

    const upOvz = await templar(["update", name, "--dest", ovz, "--keyring", maintainer.public]);
    expect(upOvz.code, upOvz.stderr).toBe(0);
    expect((await readFile(join(ovz, `${name}.tar.gz`))).equals(await readFile(v2.file("tar.gz")))).toBe(
      true,
    );

    // The registry drops the template: prune removes it locally (dry run first).
    const auth = { authorization: `Bearer ${reg.token}` };
    for (const v of ["13.1.0", "13.2.0"]) {
      expect(
        (await fetch(`${reg.url}/v1/templates/${name}/${v}`, { method: "DELETE", headers: auth })).status,
      ).toBe(204);
    }
    const dry = await templar(["prune", "--dry-run", "--dest", d]);
    expect(dry.stdout).toContain(`would remove ${join(d, file2)}`);
    expect(await visible(d)).toContain(file2);
    const pruned = await templar(["prune", "--dest", d]);
    expect(pruned.code, pruned.stderr).toBe(0);
    // Nothing of the template is left; what the host measured (for --delta auto) stays.
    expect((await visible(d)).filter((f) => f !== ".templar/speeds.json")).toEqual([]);
  }, 60_000);
});

describe.skipIf(!ready)("trust: a registry's push policy", () => {
  let reg: CompatRegistry;
  let maintainer: Keys;
  let stranger: Keys;

  beforeAll(async () => {
    const { mkdtemp } = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    const keysDir = await mkdtemp(join(tmpdir(), "templar-policy-keys-"));
    maintainer = await generateKey(join(keysDir, "maintainer"), "Policy Maintainer");
    stranger = await generateKey(join(keysDir, "stranger"), "Policy Stranger");
    reg = await startCompatRegistry({ pushPolicy: { keyrings: [maintainer.public] } });
  }, 60_000);
  afterAll(async () => reg?.close());

  const pushes = (outDir: string) => templar(["push", outDir, "--registry", reg.url, "--token", reg.token]);

  it("refuses unsigned and untrusted manifests with 403 and stores nothing; accepts trusted ones", async () => {
    const unsigned = await packRootfs(reg.dir, "policy-unsigned", "1.0.0", { epoch: 1_780_000_000 });
    const r1 = await pushes(unsigned.outDir);
    expect(r1.code).not.toBe(0);
    expect(r1.stderr).toMatch(/403.*only accepts signed manifests|only accepts signed manifests/);
    expect(await reg.storage.stat(keys.manifest("policy-unsigned", "1.0.0"))).toBeNull();

    const untrusted = await packRootfs(reg.dir, "policy-stranger", "1.0.0", {
      signKey: stranger.secret,
      epoch: 1_780_000_000,
    });
    const r2 = await pushes(untrusted.outDir);
    expect(r2.code).not.toBe(0);
    expect(r2.stderr).toMatch(/push policy does not trust|not in the trusted keyring/);
    expect(await reg.storage.stat(keys.manifest("policy-stranger", "1.0.0"))).toBeNull();
    expect(await reg.storage.stat(keys.signature("policy-stranger", "1.0.0"))).toBeNull();

    const good = await packRootfs(reg.dir, "policy-good", "1.0.0", {
      signKey: maintainer.secret,
      epoch: 1_780_000_000,
    });
    const r3 = await pushes(good.outDir);
    expect(r3.code, r3.stderr).toBe(0);
    expect(await reg.storage.stat(keys.manifest("policy-good", "1.0.0"))).not.toBeNull();
    expect(await reg.storage.stat(keys.artifactSignature("policy-good", "1.0.0", "tar.gz"))).not.toBeNull();
  }, 60_000);

  it("refuses an artifact signature that does not verify over the blob", async () => {
    const a = await packRootfs(reg.dir, "policy-art", "1.0.0", {
      signKey: maintainer.secret,
      epoch: 1_780_000_000,
    });
    expect((await pushes(a.outDir)).code).toBe(0);
    // The manifest's own signature is a valid signature by a trusted key, but over other bytes.
    const res = await fetch(`${reg.url}/v1/templates/policy-art/1.0.0/signature/tar.zst`, {
      method: "PUT",
      headers: { authorization: `Bearer ${reg.token}` },
      body: await readFile(`${a.manifestPath}.asc`),
    });
    // tar.zst already has its (good) signature: another one is refused either way.
    expect([403, 409]).toContain(res.status);
    const b = await packRootfs(reg.dir, "policy-art2", "1.0.0", {
      signKey: maintainer.secret,
      epoch: 1_780_000_000,
      formats: "gz",
    });
    const { rm } = await import("node:fs/promises");
    await rm(`${b.file("tar.gz")}.asc`);
    expect((await pushes(b.outDir)).code).toBe(0);
    const bad = await fetch(`${reg.url}/v1/templates/policy-art2/1.0.0/signature/tar.gz`, {
      method: "PUT",
      headers: { authorization: `Bearer ${reg.token}` },
      body: await readFile(`${b.manifestPath}.asc`),
    });
    expect(bad.status).toBe(403);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toMatch(/BAD signature/);
    expect(await reg.storage.stat(keys.artifactSignature("policy-art2", "1.0.0", "tar.gz"))).toBeNull();
  }, 60_000);
});
