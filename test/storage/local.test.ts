import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, rm } from "node:fs/promises";
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

describe("local directory: folders", () => {
  it("an upload's folder goes with it; a plain delete keeps its folder", async () => {
    const dir = await mkdtemp(join(tmpdir(), "templar-storage-"));
    try {
      const driver = new LocalDriver(dir);
      const store = new Store(driver, { cacheTtlMs: 0 });
      const data = randomBytes(50_000);
      const done = await store.uploads.create("o");
      await store.uploads.append(done.id, "o", 0, chunked(data, 10_000));
      await store.uploads.complete(done.id, "o", sha(data));
      const aborted = await store.uploads.create("o");
      await store.uploads.append(aborted.id, "o", 0, chunked(data, 10_000));
      expect(await store.uploads.abort(aborted.id, "o")).toBe(true);
      expect(await readdir(join(dir, "uploads"))).toEqual([]);

      await driver.put("gc/pending/a", Buffer.from("x"));
      await driver.delete("gc/pending/a");
      expect(await readdir(join(dir, "gc", "pending"))).toEqual([]);
      await driver.put("x/y/z", Buffer.from("x"));
      await driver.delete("x/y/z", { removeEmptyFolders: true });
      expect(await readdir(join(dir, "x"))).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
