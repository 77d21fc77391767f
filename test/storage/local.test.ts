import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { LocalStorage } from "../../registry/storage/local.js";
import { chunked, sha, storageConformance } from "./conformance.js";

storageConformance("local directory", async () => {
  const dir = await mkdtemp(join(tmpdir(), "templar-storage-"));
  return {
    storage: new LocalStorage(dir),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

describe("local directory: two processes on one directory", () => {
  it("completes an upload whose chunks went to different instances (no stale running hash)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "templar-storage-"));
    try {
      const a = new LocalStorage(dir);
      const b = new LocalStorage(dir);
      const data = randomBytes(300_000);
      const up = await a.createUpload();
      await a.appendUpload(up.id, 0, chunked(data.subarray(0, 100_000), 10_000));
      await b.appendUpload(up.id, 100_000, chunked(data.subarray(100_000, 200_000), 10_000));
      await a.appendUpload(up.id, 200_000, chunked(data.subarray(200_000), 10_000)); // a's hash is stale
      expect(await a.completeUpload(up.id, sha(data))).toEqual({ size: data.length });
      const up2 = await a.createUpload();
      await a.appendUpload(up2.id, 0, chunked(data.subarray(0, 150_000), 10_000));
      await b.appendUpload(up2.id, 150_000, chunked(data.subarray(150_000), 10_000));
      await expect(a.completeUpload(up2.id, sha(data))).resolves.toEqual({ size: data.length });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
