import { afterAll, describe, it } from "vitest";
import { S3Storage } from "../../registry/storage/s3.js";
import { rgwForTests } from "../helpers/rgw.js";
import { storageConformance } from "./conformance.js";

// One throwaway Ceph RGW for this file (scripts/rgw); the same suite as the local backend, unchanged.
const rgw = await rgwForTests();

if (rgw) {
  afterAll(() => rgw.stop());
  // Under a key prefix in a fresh bucket: every key must be mapped in and out of the prefix
  // (the registry tests use a bucket root).
  storageConformance("s3 on Ceph RGW", async () => {
    const storage = new S3Storage(rgw.options(await rgw.createBucket(), "some/prefix/"));
    return { storage, cleanup: async () => storage.client.destroy() };
  });
} else {
  describe.skip("storage conformance: s3 (Ceph RGW not available)", () => {
    it("needs scripts/rgw", () => {});
  });
}
