import {
  chown,
  link,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  symlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { baseManifest, type FakeRegistry, startFakeRegistry } from "../helpers/fake-registry.js";
import { templar } from "../helpers/registry-process.js";

/**
 * `templar pull`, `update` and `prune` against a registry that serves what an attacker would
 * (test/helpers/fake-registry.ts), and a template cache where someone planted links: nothing is
 * ever written, appended to or removed outside the destination, and a bad or foreign partial
 * file never ends up in a template.
 */
let root: string;
let reg: FakeRegistry;
let n = 0;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "templar-containment-"));
  reg = await startFakeRegistry(root);
});
afterAll(async () => {
  await reg?.close();
  if (root) await rm(root, { recursive: true, force: true });
});

/** A fresh sandbox: the destination sits two levels down, so an escape lands inside `box`. */
async function sandbox(): Promise<{ box: string; dest: string }> {
  const box = join(root, `box-${++n}`);
  const dest = join(box, "a", "b", "dest");
  await mkdir(dest, { recursive: true });
  return { box, dest };
}

/** Every path under `dir`, relative to it (symlinks not followed). */
async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { recursive: true })) out.push(String(entry));
  return out.sort();
}

const pull = (ref: string, dest: string, ...more: string[]) =>
  templar(["pull", ref, "--registry", reg.url, "--dest", dest, "--keyring", reg.keyring, ...more], {
    TEMPLAR_HOST_CONFIG: join(root, "no-host-config.yaml"),
  });

async function publishSigned(
  name: string,
  version: string,
  size: number,
  fields: Record<string, unknown> = {},
) {
  const gz = reg.blob(size, "tar.gz");
  const zst = reg.blob(size, "tar.zst");
  await reg.publish({ manifest: baseManifest(name, version, [gz, zst], fields), signature: "good" });
  return { gz, zst };
}

function blobGets(digest: string) {
  return reg.blobRequests.filter((r) => r.digest === digest);
}

describe("pull stays inside --dest", () => {
  it("refuses a signed manifest whose arch would make the Proxmox file name climb out", async () => {
    const { box, dest } = await sandbox();
    await publishSigned("escape-1-x86_64", "1.0.0", 4096, { arch: "x/../../../escaped" });
    const r = await pull("escape-1-x86_64", dest, "--proxmox");
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/field arch/);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    // Nothing anywhere in the sandbox but the (empty) destination itself.
    expect(await tree(box)).toEqual(["a", "a/b", "a/b/dest"]);
  });

  it("never appends to the target of a symlink planted as the partial file", async () => {
    const { box, dest } = await sandbox();
    const { gz } = await publishSigned("link-partial-1-x86_64", "1.0.0", 64 * 1024);
    const victim = join(box, "victim.txt");
    await writeFile(victim, "precious");
    await mkdir(join(dest, ".templar"));
    const partial = join(dest, ".templar", `link-partial-1-x86_64.tar.gz.${gz.digest.slice(7, 19)}.partial`);
    await symlink(victim, partial);
    const r = await pull("link-partial-1-x86_64", dest);
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(victim, "utf8")).toBe("precious");
    const final = join(dest, "link-partial-1-x86_64.tar.gz");
    expect((await lstat(final)).isFile()).toBe(true);
    expect((await readFile(final)).equals(gz.bytes)).toBe(true);
  });

  it("refuses a state folder that is a symlink, and writes nothing through it", async () => {
    const { box, dest } = await sandbox();
    await publishSigned("link-state-1-x86_64", "1.0.0", 4096);
    const elsewhere = join(box, "elsewhere");
    await mkdir(elsewhere);
    await symlink(elsewhere, join(dest, ".templar"));
    const r = await pull("link-state-1-x86_64", dest);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/\.templar is a symbolic link/);
    expect(await readdir(elsewhere)).toEqual([]);
    expect(await readdir(dest)).toEqual([".templar"]);
  });

  it("does not resume a partial file that is a hard link to another file, and leaves that file alone", async () => {
    const { box, dest } = await sandbox();
    const { gz } = await publishSigned("hardlink-1-x86_64", "1.0.0", 64 * 1024);
    const other = join(box, "other.bin");
    const prefix = gz.bytes.subarray(0, 1000);
    await writeFile(other, prefix);
    await mkdir(join(dest, ".templar"));
    await link(other, join(dest, ".templar", `hardlink-1-x86_64.tar.gz.${gz.digest.slice(7, 19)}.partial`));
    const r = await pull("hardlink-1-x86_64", dest);
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(other)).equals(prefix)).toBe(true);
    expect((await lstat(other)).nlink).toBe(1);
    expect(blobGets(gz.digest).map((g) => g.range)).toEqual([null]);
  });

  it("does not resume a partial file owned by another user", async (ctx) => {
    if (process.getuid?.() !== 0) {
      console.warn("skipping: only root can make a file owned by another user");
      return ctx.skip();
    }
    const { dest } = await sandbox();
    const { gz } = await publishSigned("foreign-1-x86_64", "1.0.0", 64 * 1024);
    await mkdir(join(dest, ".templar"));
    const partial = join(dest, ".templar", `foreign-1-x86_64.tar.gz.${gz.digest.slice(7, 19)}.partial`);
    await writeFile(partial, gz.bytes.subarray(0, 1000)); // the right bytes, but not ours
    await chown(partial, 65534, 65534);
    const r = await pull("foreign-1-x86_64", dest);
    expect(r.code, r.stderr).toBe(0);
    expect(blobGets(gz.digest).map((g) => g.range)).toEqual([null]);
    expect((await readFile(join(dest, "foreign-1-x86_64.tar.gz"))).equals(gz.bytes)).toBe(true);
  });

  it("does not remove the file an origin record names when it is not that template's", async () => {
    const { dest } = await sandbox();
    await publishSigned("origin-file-1-x86_64", "1.0.0", 4096);
    await mkdir(join(dest, ".templar"));
    await writeFile(join(dest, "victim.txt"), "keep me");
    const record = {
      registry: reg.url,
      ref: "origin-file-1-x86_64@latest",
      name: "origin-file-1-x86_64",
      version: "0.9.0",
      format: "tar.zst",
      digest: `sha256:${"0".repeat(64)}`,
      size: 1,
      file: "victim.txt",
      pulled: "2026-01-01T00:00:00Z",
    };
    await writeFile(
      join(dest, ".templar", "origin-file-1-x86_64.tar.zst.origin.json"),
      JSON.stringify(record),
    );
    const r = await pull("origin-file-1-x86_64", dest, "--proxmox");
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(join(dest, "victim.txt"), "utf8")).toBe("keep me");
    expect(await readdir(dest)).toContain("origin-file-1-x86_64_1.0.0_amd64.tar.zst");
  });

  it("prune removes nothing outside --dest whatever an origin record says", async () => {
    const { box, dest } = await sandbox();
    await publishSigned("gone-1-x86_64", "1.0.0", 4096);
    reg.remove("gone-1-x86_64");
    await writeFile(join(box, "outside.txt"), "keep me");
    await mkdir(join(dest, ".templar"));
    const record = {
      registry: reg.url,
      ref: "gone-1-x86_64@latest",
      name: "gone-1-x86_64",
      version: "1.0.0",
      format: "tar.gz",
      digest: `sha256:${"0".repeat(64)}`,
      size: 7,
      file: "../../../outside.txt",
      pulled: "2026-01-01T00:00:00Z",
    };
    await writeFile(join(dest, ".templar", "gone-1-x86_64.tar.gz.origin.json"), JSON.stringify(record));
    const r = await templar(["prune", "--dest", dest], { TEMPLAR_HOST_CONFIG: join(root, "none.yaml") });
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(join(box, "outside.txt"), "utf8")).toBe("keep me");
  });
});

describe("pull: partial files and the up-to-date check", () => {
  it("restarts from byte 0, once, when a kept partial file has the wrong bytes", async () => {
    const { dest } = await sandbox();
    const { gz } = await publishSigned("wrong-partial-1-x86_64", "1.0.0", 64 * 1024);
    await mkdir(join(dest, ".templar"));
    const partial = join(dest, ".templar", `wrong-partial-1-x86_64.tar.gz.${gz.digest.slice(7, 19)}.partial`);
    await writeFile(partial, Buffer.alloc(5000, 7));
    const r = await pull("wrong-partial-1-x86_64", dest);
    expect(r.code, r.stderr).toBe(0);
    expect((await readFile(join(dest, "wrong-partial-1-x86_64.tar.gz"))).equals(gz.bytes)).toBe(true);
    expect(blobGets(gz.digest).map((g) => g.range)).toEqual(["bytes=5000-", null]);
    expect((await readdir(join(dest, ".templar"))).filter((f) => f.endsWith(".partial"))).toEqual([]);
  });

  it("still fails with exit 3 and leaves nothing when the registry's bytes are wrong", async () => {
    const { dest } = await sandbox();
    const { gz } = await publishSigned("bad-blob-1-x86_64", "1.0.0", 64 * 1024);
    reg.corrupt(gz.digest, Buffer.alloc(gz.size, 1));
    const fresh = await pull("bad-blob-1-x86_64", dest);
    expect(fresh.code).toBe(3);
    expect(fresh.stderr).toMatch(/the manifest says sha256:/);
    expect(blobGets(gz.digest)).toHaveLength(1);
    expect(await tree(dest)).toEqual([]);

    // With a (wrong) kept partial: one restart, then the same failure, and nothing left.
    await mkdir(join(dest, ".templar"));
    const partial = join(dest, ".templar", `bad-blob-1-x86_64.tar.gz.${gz.digest.slice(7, 19)}.partial`);
    await writeFile(partial, Buffer.alloc(100, 2));
    const resumed = await pull("bad-blob-1-x86_64", dest);
    expect(resumed.code).toBe(3);
    expect(blobGets(gz.digest).map((g) => g.range)).toEqual([null, "bytes=100-", null]);
    expect(await tree(dest)).toEqual([]);
  });

  it("pulls again when the cached file was changed after it was verified, not when it was only touched", async () => {
    const { dest } = await sandbox();
    const { gz } = await publishSigned("changed-1-x86_64", "1.0.0", 64 * 1024);
    expect((await pull("changed-1-x86_64", dest)).code).toBe(0);
    const final = join(dest, "changed-1-x86_64.tar.gz");
    const gets = () => blobGets(gz.digest).length;

    const touched = new Date(Date.now() - 3600_000);
    await utimes(final, touched, touched);
    const same = await pull("changed-1-x86_64", dest, "--json");
    expect(same.code, same.stderr).toBe(0);
    expect(JSON.parse(same.stdout)).toMatchObject({ upToDate: true });
    expect(gets()).toBe(1);

    // Same size, one byte changed in place, modification time put back: still caught.
    const bytes = await readFile(final);
    bytes[100]! ^= 0xff;
    await writeFile(final, bytes);
    await utimes(final, touched, touched);
    const again = await pull("changed-1-x86_64", dest, "--json");
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ upToDate: false });
    expect(gets()).toBe(2);
    expect((await readFile(final)).equals(gz.bytes)).toBe(true);

    const origin = JSON.parse(
      await readFile(join(dest, ".templar", "changed-1-x86_64.tar.gz.origin.json"), "utf8"),
    );
    expect(origin.fingerprint).toMatchObject({ size: gz.size });
  });
});

describe("pull: signatures and --allow-unsigned", () => {
  it("refuses a present signature that does not verify, --allow-unsigned or not", async () => {
    const { dest } = await sandbox();
    const gz = reg.blob(4096);
    await reg.publish({ manifest: baseManifest("badsig-1-x86_64", "1.0.0", [gz]), signature: "other" });
    for (const more of [[], ["--allow-unsigned"]]) {
      const r = await pull("badsig-1-x86_64", dest, ...more);
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(/manifest signature: BAD signature/);
    }
    expect(await tree(dest)).toEqual([]);
  });

  it("needs the keyring to check a present signature even with --allow-unsigned (exit 4 when missing)", async () => {
    const { dest } = await sandbox();
    await publishSigned("nokeyring-1-x86_64", "1.0.0", 4096);
    const missing = join(root, "no-such-keyring.asc");
    const args = ["pull", "nokeyring-1-x86_64", "--registry", reg.url, "--dest", dest, "--keyring", missing];
    for (const more of [[], ["--allow-unsigned"]]) {
      const r = await templar([...args, ...more], { TEMPLAR_HOST_CONFIG: join(root, "none.yaml") });
      expect(r.code).toBe(4);
      expect(r.stderr).toMatch(/keyring .*no-such-keyring\.asc: no such file: cannot check the signature/);
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
    }
    expect(await tree(dest)).toEqual([]);

    // An unsigned template needs no keyring with --allow-unsigned.
    const gz = reg.blob(4096);
    await reg.publish({ manifest: baseManifest("nokeyring-2-x86_64", "1.0.0", [gz]), signature: "none" });
    const unsigned = await templar(
      [
        "pull",
        "nokeyring-2-x86_64",
        "--registry",
        reg.url,
        "--dest",
        dest,
        "--keyring",
        missing,
        "--allow-unsigned",
      ],
      { TEMPLAR_HOST_CONFIG: join(root, "none.yaml") },
    );
    expect(unsigned.code, unsigned.stderr).toBe(0);
  });

  it("says which answer was too large and from where, instead of an internal error", async () => {
    const { dest } = await sandbox();
    reg.raw("huge-1-x86_64", Buffer.alloc(2 << 20, 0x20));
    const r = await pull("huge-1-x86_64", dest);
    expect(r.code).toBe(1);
    expect(r.stderr).not.toMatch(/internal error/);
    expect(r.stderr).toMatch(
      new RegExp(
        `manifest of huge-1-x86_64@latest: the answer from ${reg.url}/v1/templates/huge-1-x86_64/latest is larger than`,
      ),
    );
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(await tree(dest)).toEqual([]);
  });
});
