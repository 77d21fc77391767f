import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { LocalDriver } from "../../registry/storage/local-driver.js";
import { Store } from "../../registry/store/store.js";
import { chunked, driverConformance } from "./driver-conformance.js";
import { sha, storeSuite } from "./store-suite.js";

async function fresh() {
  const dir = await mkdtemp(join(tmpdir(), "templar-storage-"));
  return { driver: new LocalDriver(dir), cleanup: () => rm(dir, { recursive: true, force: true }) };
}

driverConformance("local directory", fresh);
storeSuite("local directory", fresh);

describe("local directory: two processes on one directory", () => {
  it("completes an upload whose chunks went to different instances (no stale running hash)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "templar-storage-"));
    try {
      const a = new Store(new LocalDriver(dir), { cacheTtlMs: 0 });
      const b = new Store(new LocalDriver(dir), { cacheTtlMs: 0 });
      const data = randomBytes(300_000);
      const up = await a.uploads.create("o");
      await a.uploads.append(up.id, "o", 0, chunked(data.subarray(0, 100_000), 10_000));
      await b.uploads.append(up.id, "o", 100_000, chunked(data.subarray(100_000, 200_000), 10_000));
      await a.uploads.append(up.id, "o", 200_000, chunked(data.subarray(200_000), 10_000)); // a's hash is stale
      expect(await a.uploads.complete(up.id, "o", sha(data))).toEqual({ size: data.length });
      const up2 = await a.uploads.create("o");
      await a.uploads.append(up2.id, "o", 0, chunked(data.subarray(0, 150_000), 10_000));
      await b.uploads.append(up2.id, "o", 150_000, chunked(data.subarray(150_000), 10_000));
      await expect(a.uploads.complete(up2.id, "o", sha(data))).resolves.toEqual({ size: data.length });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
