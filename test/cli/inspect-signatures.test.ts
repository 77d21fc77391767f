import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { templar } from "../helpers/registry-process.js";

describe("inspect shows who signed, and verifies with --keyring", () => {
  let dir: string;
  let manifest: string;
  let fingerprint: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "templar-inspectsig-"));
    await mkdir(join(dir, "rootfs", "etc"), { recursive: true });
    await writeFile(join(dir, "rootfs", "etc", "os-release"), "ID=test\n");
    const key = await templar([
      "key",
      "generate",
      "--name",
      "Example Templates",
      "--email",
      "t@example.org",
      "--out",
      join(dir, "keys", "maintainer"),
    ]);
    fingerprint = /fingerprint: ([0-9A-F]{40})/.exec(key.stdout)![1]!;
    await templar(["key", "generate", "--name", "Stranger", "--out", join(dir, "keys", "stranger")]);
    const pack = await templar([
      "pack",
      join(dir, "rootfs"),
      ...["--name", "insp-1-x86_64-a", "--version", "1.0.0", "--out", join(dir, "out"), "--formats", "gz"],
      ...["--sign-key", join(dir, "keys", "maintainer.key.asc")],
    ]);
    expect(pack.code, pack.stderr).toBe(0);
    manifest = join(dir, "out", "insp-1-x86_64-a-1.0.0.manifest.json");
  }, 60_000);
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("without a keyring: names the key that claims to have signed, and says it is not verified", async () => {
    const r = await templar(["inspect", manifest]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`signature manifest:\\s+claims key ${fingerprint}, NOT verified`));
    expect(r.stdout).toMatch(new RegExp(`signature tar.gz:\\s+claims key ${fingerprint}, NOT verified`));
  });

  it("with the maintainer's keyring: verified, with fingerprint and user id", async () => {
    const r = await templar([
      "inspect",
      manifest,
      "--keyring",
      join(dir, "keys", "maintainer.pub.asc"),
      "--json",
    ]);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as {
      signatures: { what: string; status: string; signer: string; userId: string }[];
    };
    expect(report.signatures.map((s) => [s.what, s.status, s.signer, s.userId])).toEqual([
      ["manifest", "verified", fingerprint, "Example Templates <t@example.org>"],
      ["tar.gz", "verified", fingerprint, "Example Templates <t@example.org>"],
    ]);
  });

  it("with another keyring: exit 3; with a missing keyring file: exit 4", async () => {
    const other = await templar(["inspect", manifest, "--keyring", join(dir, "keys", "stranger.pub.asc")]);
    expect(other.code).toBe(3);
    expect(other.stdout).toMatch(/signature manifest:\s+FAILED: signed by key .*not in the keyring/);
    const missing = await templar(["inspect", manifest, "--keyring", join(dir, "nope.asc")]);
    expect(missing.code).toBe(4);
  });
});
