import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { S3Driver } from "../../registry/storage/s3-driver.js";
import { gcSoak } from "../helpers/gc-soak.js";
import { writeConfig } from "../helpers/registry.js";
import { type Rgw, rgwForTests } from "../helpers/rgw.js";

const rgw = await rgwForTests();

describe.skipIf(!rgw)("online GC with no grace period against concurrent pushes (S3, Ceph RGW)", () => {
  let dir: string;
  let replicas: S3Driver[] = [];
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "templar-s3-gc-soak-"));
  });
  afterAll(async () => {
    for (const storage of replicas) storage.client.destroy();
    await rm(dir, { recursive: true, force: true });
    await rgw?.stop();
  });

  it("loses no acknowledged manifest and no blob one names", async () => {
    const configPath = join(dir, "registry.yaml");
    const { push: token } = (await writeConfig(configPath, { tokens: { push: ["push:*"] } })) as {
      push: string;
    };
    // Two replicas of one bucket, each with its own GC loop.
    const bucket = await (rgw as Rgw).createBucket();
    replicas = [new S3Driver((rgw as Rgw).options(bucket)), new S3Driver((rgw as Rgw).options(bucket))];
    const result = await gcSoak({
      replicas,
      configPath,
      token,
      durationMs: 25_000,
      minAcknowledged: 300,
      minGcInProgress: 1,
      maxMs: 110_000,
      shared: 8,
      identical: 3,
      distinct: 4,
      lanes: 3,
      putDelayMs: 2500,
      label: "s3",
    });
    expect(result.lost).toEqual([]);
    expect(result.false409).toBe(0);
    expect(result.failures).toEqual([]);
    expect(result.acknowledged).toBeGreaterThanOrEqual(300);
    expect(result.gcDeleted).toBeGreaterThan(0); // GC did collect meanwhile
    expect(result.backedOff.gcInProgress).toBeGreaterThan(0); // ...and its marks met PUTs
  }, 300_000);
});
