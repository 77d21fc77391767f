import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalDriver } from "../../registry/storage/local-driver.js";
import { gcSoak } from "../helpers/gc-soak.js";
import { writeConfig } from "../helpers/registry.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "templar-gc-soak-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("online GC with no grace period against concurrent pushes (local storage)", () => {
  it("loses no acknowledged manifest and no blob one names", async () => {
    const configPath = join(dir, "registry.yaml");
    const { push: token } = (await writeConfig(configPath, { tokens: { push: ["push:*"] } })) as {
      push: string;
    };
    const data = join(dir, "data");
    // Two replicas of one directory, each with its own GC loop.
    const replicas = [new LocalDriver(data), new LocalDriver(data)];
    await replicas[0]!.check();
    const result = await gcSoak({
      replicas,
      configPath,
      token,
      durationMs: 20_000,
      minAcknowledged: 300,
      minGcInProgress: 1,
      maxMs: 45_000,
      shared: 6,
      identical: 3,
      distinct: 4,
      lanes: 2,
      putDelayMs: 500,
      label: "local",
    });
    expect(result.lost).toEqual([]);
    expect(result.false409).toBe(0);
    expect(result.failures).toEqual([]);
    expect(result.acknowledged).toBeGreaterThanOrEqual(300);
    expect(result.gcDeleted).toBeGreaterThan(0); // GC did collect meanwhile
    expect(result.backedOff.gcInProgress).toBeGreaterThan(0); // ...and its marks met PUTs
  }, 180_000);
});
