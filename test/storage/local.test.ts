import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LocalStorage } from "../../registry/storage/local.js";
import { storageConformance } from "./conformance.js";

storageConformance("local directory", async () => {
  const dir = await mkdtemp(join(tmpdir(), "templar-storage-"));
  return {
    storage: new LocalStorage(dir),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});
