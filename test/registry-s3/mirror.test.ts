import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKey, type Keys, type Packed, packRootfs, pullSigned } from "../compat/fixture.js";
import { createToken, type RegistryProcess, startRegistry, templar } from "../helpers/registry-process.js";
import { type Rgw, rgwForTests } from "../helpers/rgw.js";
import { type S3Serve, spawnS3Serve } from "../helpers/s3-registry.js";

const rgw = await rgwForTests();

/**
 * `templar mirror` into a bucket (Ceph RGW): the mirror writes the registry's layout through the
 * S3 backend, and `templar serve --storage s3://` of that bucket serves it to a verifying host.
 */
describe.skipIf(!rgw)("templar mirror into an S3 bucket", () => {
  let dir: string;
  let source: RegistryProcess;
  let serve: S3Serve | undefined;
  let key: Keys;
  let packed: Packed;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "templar-s3-mirror-"));
    key = await generateKey(join(dir, "maintainer"), "Test Maintainer");
    const config = join(dir, "source.yaml");
    await writeFile(config, "gc:\n  interval: 0\n");
    const token = createToken(config, "push:*", "pull:*");
    source = await startRegistry(join(dir, "source"), config);
    packed = await packRootfs(dir, "bucket-x86_64", "3.1.0", { signKey: key.secret, epoch: 1_700_000_000 });
    const pushed = await templar(["push", packed.outDir, "--registry", source.url, "--token", token]);
    expect(pushed.code, pushed.stderr).toBe(0);
  }, 120_000);

  afterAll(async () => {
    await serve?.stop();
    await source?.stop();
    await rgw?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("copies a signed template into a bucket that templar serve then serves", async () => {
    const r = rgw as Rgw;
    const bucket = await r.createBucket();
    const mirrored = await templar(["mirror", source.url, `s3://${bucket}`], r.env);
    expect(mirrored.code, mirrored.stderr).toBe(0);
    expect(mirrored.stdout).toContain("1 version(s) copied");
    expect(mirrored.stderr + mirrored.stdout).not.toContain(r.secretAccessKey);

    const again = await templar(["mirror", source.url, `s3://${bucket}`], r.env);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain("0 version(s) copied, 1 already there");

    const config = join(dir, "bucket.yaml");
    await writeFile(config, "gc:\n  interval: 0\n");
    serve = await spawnS3Serve(r, { bucket, configPath: config });
    const cache = join(dir, "cache");
    const pulled = await pullSigned(serve.url, "bucket-x86_64", cache, key.public);
    expect(pulled.code, pulled.stderr).toBe(0);
    const gz = await readFile(join(cache, "bucket-x86_64.tar.gz"));
    expect(gz.equals(await readFile(packed.file("tar.gz")))).toBe(true);
  });
});
