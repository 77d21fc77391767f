import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { gentooPreset } from "../../builder/family/presets/gentoo.js";
import { portageDb } from "../../builder/inventory/portage.js";
import { parseGentooLatest } from "../../builder/sources/archive/acquire.js";
import { checkFile, digestsFor, parseChecksums } from "../../builder/sources/archive/checksums.js";
import { ArchiveConfigSchema } from "../../builder/sources/archive/config.js";
import { gentooTree } from "../fixtures/rootfs.js";

const dir = mkdtempSync(join(tmpdir(), "templar-checksums-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const hex = (alg: string, data: string) => createHash(alg).update(data).digest("hex");

describe("checksum files", () => {
  it("BSD with Fedora's size comments", () => {
    const t = parseChecksums(
      `# a.tar.xz: 5 bytes\nSHA256 (a.tar.xz) = ${"A".repeat(64)}\n`,
      "bsd",
      "CHECKSUM",
    );
    expect(digestsFor(t, "a.tar.xz", "CHECKSUM")).toEqual({ size: 5, digests: { sha256: "a".repeat(64) } });
  });
  it("GNU, text and binary mode, algorithm from the length", () => {
    const t = parseChecksums(`${"b".repeat(64)}  x.tar\n${"c".repeat(128)} *y.tar\n`, "gnu", "SHA256SUMS");
    expect(t.get("x.tar")!.digests).toEqual({ sha256: "b".repeat(64) });
    expect(t.get("y.tar")!.digests).toEqual({ sha512: "c".repeat(128) });
  });
  it("Gentoo DIGESTS: sections in any order, unknown algorithms skipped", () => {
    const text = [
      "# SHA512 HASH",
      `${"1".repeat(128)}  s.tar.xz`,
      "# WHIRLPOOL HASH",
      `${"9".repeat(128)}  s.tar.xz`,
      "# BLAKE2B HASH",
      `${"2".repeat(128)}  s.tar.xz`,
    ].join("\n");
    expect(parseChecksums(text, "gentoo-digests", "D").get("s.tar.xz")!.digests).toEqual({
      sha512: "1".repeat(128),
      blake2b512: "2".repeat(128),
    });
  });
  it("checks every listed digest (BLAKE2B too) and the size", async () => {
    const path = join(dir, "f");
    writeFileSync(path, "hello");
    const good = {
      digests: { sha512: hex("sha512", "hello"), blake2b512: hex("blake2b512", "hello") },
      size: 5,
    };
    expect(await checkFile(path, good, "f")).toBe(hex("sha256", "hello"));
    await expect(
      checkFile(path, { ...good, digests: { ...good.digests, blake2b512: "0".repeat(128) } }, "f"),
    ).rejects.toThrow(/blake2b512 is .* expected 0+: the download is corrupt/);
    await expect(checkFile(path, { ...good, size: 6 }, "f")).rejects.toThrow(
      /size 5 bytes, but the checksum file says 6/,
    );
  });
  it("refuses files that list nothing usable", () => {
    expect(() => parseChecksums("hello\n", "bsd", "CHECKSUM")).toThrow(
      /CHECKSUM: no bsd checksum lines found/,
    );
  });
  it("Gentoo's latest-stage3 index, refusing paths that leave the directory", () => {
    const text =
      "# Latest as of x\n# ts=1\n20261117T164025Z/stage3-amd64-openrc-20261117T164025Z.tar.xz 263045404\n";
    expect(parseGentooLatest(text, "i")).toEqual({
      path: "20261117T164025Z/stage3-amd64-openrc-20261117T164025Z.tar.xz",
      size: 263045404,
    });
    expect(() => parseGentooLatest("../../etc/x.tar.xz 1\n", "i")).toThrow(/no "<path> <size>" line/);
    expect(() => parseGentooLatest("https://evil/x.tar.xz 1\n", "i")).toThrow(/no "<path> <size>" line/);
  });
});

describe("archive recipe source blocks", () => {
  const base = { method: "archive", url: "https://x/y.tar.xz", layout: "rootfs" };
  it("need a signature, a pinned sha256 or an explicit trust: https", () => {
    expect(ArchiveConfigSchema.safeParse(base).error?.issues[0]?.message).toMatch(/unsigned source needs/);
    expect(ArchiveConfigSchema.safeParse({ ...base, trust: "https" }).success).toBe(true);
    expect(ArchiveConfigSchema.safeParse({ ...base, sha256: "A".repeat(64) }).data?.sha256).toBe(
      "a".repeat(64),
    );
  });
  it("pin full fingerprints only", () => {
    const key = (fingerprint: string) => ({
      ...base,
      checksums: { url: "https://x/C", format: "bsd" },
      signature: { kind: "clearsigned", keys: [{ fingerprint, url: "https://k" }] },
    });
    expect(ArchiveConfigSchema.safeParse(key("BB572E0E2D182910")).success).toBe(false);
    expect(
      ArchiveConfigSchema.safeParse(key("13EB BDBE DE7A 1277 5DFD  B1BA BB57 2E0E 2D18 2910")).success,
    ).toBe(true);
  });
});

describe("Gentoo family without a build", () => {
  it("systemd stage3: gettys masked, sshd enabled; inventory from /var/db/pkg", async () => {
    const root = join(dir, "gentoo-systemd");
    gentooTree(root, "systemd");
    writeFileSync(join(root, "var/db/pkg/sys-apps/systemd-257.7/CHOST"), "aarch64-unknown-linux-gnu\n");
    mkdirSync(join(root, "usr/lib/systemd/system"), { recursive: true });
    writeFileSync(join(root, "usr/lib/systemd/system/sshd.service"), "[Service]\n");
    await gentooPreset.apply(root, () => {});
    expect(readlinkSync(join(root, "etc/systemd/system/getty@tty1.service"))).toBe("/dev/null");
    expect(readlinkSync(join(root, "etc/systemd/system/multi-user.target.wants/sshd.service"))).toBe(
      "/usr/lib/systemd/system/sshd.service",
    );
    expect(readFileSync(join(root, "etc/hostname"), "utf8")).toBe("localhost\n");
    const packages = await portageDb.packages(root);
    expect(packages).toEqual([
      { name: "app-shells/bash", version: "5.2_p37-r1", arch: "amd64" },
      { name: "sys-apps/baselayout", version: "2.17", arch: "amd64" },
      { name: "sys-apps/systemd", version: "257.7", arch: "arm64" },
      { name: "sys-libs/glibc", version: "2.41-r5", arch: "amd64" },
    ]);
  });
});
