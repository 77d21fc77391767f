import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  generateSigningKey,
  readPrivateKeyFile,
  readPublicKeys,
  readPublicKeysFile,
} from "../common/signing/keys.js";
import { signBytes, signFile, verifyDetached } from "../common/signing/signatures.js";
import { openSigner } from "../common/signing/signer.js";
import { haveTools } from "./helpers/require-tool.js";

const hasGpg = haveTools("gpg", "sqv");
const dir = mkdtempSync(join(tmpdir(), "templar-signing-"));
const gnupgHome = join(dir, "gnupg");

function gpg(...args: string[]) {
  return spawnSync("gpg", ["--homedir", gnupgHome, "--batch", "--yes", ...args], { encoding: "utf8" });
}

let maintainer: Awaited<ReturnType<typeof generateSigningKey>>;
let stranger: Awaited<ReturnType<typeof generateSigningKey>>;
const data = Buffer.from("template bytes \x00\xff".repeat(1000), "latin1");

beforeAll(async () => {
  maintainer = await generateSigningKey({ name: "Maintainer", email: "m@example.org" });
  stranger = await generateSigningKey({ name: "Stranger" });
  writeFileSync(join(dir, "m.key.asc"), maintainer.privateKeyArmored);
  writeFileSync(join(dir, "m.pub.asc"), maintainer.publicKeyArmored);
  writeFileSync(join(dir, "data.bin"), data);
  spawnSync("mkdir", ["-m", "700", gnupgHome]);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!hasGpg)("signatures checked by stock gpg and sqv", () => {
  it("a file signature verifies with gpg --verify and sqv, and fails on tampered bytes", async () => {
    const key = await readPrivateKeyFile(join(dir, "m.key.asc"));
    writeFileSync(join(dir, "data.bin.asc"), await signFile(key, join(dir, "data.bin")));
    expect(gpg("--import", join(dir, "m.pub.asc")).status).toBe(0);
    const ok = gpg("--verify", join(dir, "data.bin.asc"), join(dir, "data.bin"));
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stderr).toMatch(/Good signature/);

    expect(gpg("--output", join(dir, "m.pub.gpg"), "--export", maintainer.fingerprint).status).toBe(0);
    const sqv = spawnSync(
      "sqv",
      ["--keyring", join(dir, "m.pub.gpg"), join(dir, "data.bin.asc"), join(dir, "data.bin")],
      {
        encoding: "utf8",
      },
    );
    expect(sqv.status, sqv.stderr).toBe(0);
    expect(sqv.stdout.trim()).toBe(maintainer.fingerprint);

    writeFileSync(join(dir, "tampered.bin"), Buffer.concat([data, Buffer.from("x")]));
    expect(gpg("--verify", join(dir, "data.bin.asc"), join(dir, "tampered.bin")).status).not.toBe(0);
  });

  it("verifies a signature gpg made, from a keyring gpg exported in binary", async () => {
    const made = gpg(
      "--quick-gen-key",
      "--passphrase",
      "",
      "GPG Maker <g@example.org>",
      "ed25519",
      "sign",
      "never",
    );
    expect(made.status, made.stderr).toBe(0);
    expect(
      gpg("--local-user", "g@example.org", "--detach-sign", "--armor", join(dir, "data.bin")).status,
    ).toBe(0);
    expect(gpg("--output", join(dir, "g.pub.gpg"), "--export", "g@example.org").status).toBe(0);
    const trusted = await readPublicKeysFile(join(dir, "g.pub.gpg"));
    const sig = await import("node:fs").then((fs) => fs.readFileSync(join(dir, "data.bin.asc"), "utf8"));
    const result = await verifyDetached(sig, data, trusted, "data.bin");
    expect(result.fingerprint).toBe(trusted[0]!.getFingerprint().toUpperCase());
  });

  it("signs through the gpg agent with --sign-with gpg:KEYID", async () => {
    const signer = await openSigner({ signWith: "gpg:g@example.org" });
    process.env.GNUPGHOME = gnupgHome;
    try {
      const sig = await signer!.signBytes(data);
      const trusted = await readPublicKeysFile(join(dir, "g.pub.gpg"));
      await expect(verifyDetached(sig, data, trusted, "bytes")).resolves.toBeTruthy();
    } finally {
      delete process.env.GNUPGHOME;
    }
  });
});

describe("verifyDetached", () => {
  it("accepts a good signature and names the key", async () => {
    const key = await readPrivateKeyFile(join(dir, "m.key.asc"));
    const sig = await signBytes(key, data);
    const trusted = await readPublicKeys(Buffer.from(maintainer.publicKeyArmored), "test");
    expect((await verifyDetached(sig, data, trusted, "x")).fingerprint).toBe(maintainer.fingerprint);
  });

  it("refuses tampered data, an untrusted key and garbage, each with exit code 3", async () => {
    const key = await readPrivateKeyFile(join(dir, "m.key.asc"));
    const sig = await signBytes(key, data);
    const trusted = await readPublicKeys(Buffer.from(maintainer.publicKeyArmored), "test");
    const strangers = await readPublicKeys(Buffer.from(stranger.publicKeyArmored), "test");
    const tampered = Buffer.from(data);
    tampered[10] = tampered[10]! ^ 1;
    await expect(verifyDetached(sig, tampered, trusted, "m.json")).rejects.toMatchObject({
      exitCode: 3,
      message: expect.stringMatching(/^m\.json: BAD signature/),
    });
    await expect(verifyDetached(sig, data, strangers, "m.json")).rejects.toMatchObject({
      exitCode: 3,
      message: expect.stringMatching(/not in the trusted keyring/),
    });
    await expect(verifyDetached("not a signature", data, trusted, "m.json")).rejects.toMatchObject({
      exitCode: 3,
    });
  });

  it("needs the passphrase of a protected key", async () => {
    const locked = await generateSigningKey({ name: "Locked" }, "s3cret");
    writeFileSync(join(dir, "locked.key.asc"), locked.privateKeyArmored);
    await expect(readPrivateKeyFile(join(dir, "locked.key.asc"))).rejects.toThrow(/is protected/);
    await expect(readPrivateKeyFile(join(dir, "locked.key.asc"), "wrong")).rejects.toThrow(
      /wrong passphrase/,
    );
    const key = await readPrivateKeyFile(join(dir, "locked.key.asc"), "s3cret");
    expect(key.isDecrypted()).toBe(true);
  });
});
