import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalDriver } from "../../registry/storage/local-driver.js";
import { putImmutable } from "../../registry/store/manifests.js";
import { hooked } from "../helpers/hooked-storage.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "templar-put-immutable-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("putImmutable", () => {
  it("created, same, other", async () => {
    const storage = new LocalDriver(join(dir, "plain"));
    expect(await putImmutable(storage, "templates/a/versions/1.json", Buffer.from("one"))).toBe("created");
    expect(await putImmutable(storage, "templates/a/versions/1.json", Buffer.from("one"))).toBe("same");
    expect(await putImmutable(storage, "templates/a/versions/1.json", Buffer.from("two"))).toBe("other");
    expect((await storage.get("templates/a/versions/1.json"))?.toString()).toBe("one");
  });

  it("an object deleted between the failed create and the read is created again, not reported as other content", async () => {
    const inner = new LocalDriver(join(dir, "vanish"));
    const key = "templates/a/versions/1.json";
    await inner.put(key, Buffer.from("deleted soon"));
    let raced = false;
    // A DELETE lands right after the create-if-absent found the key taken.
    const storage = hooked(inner, async (call) => {
      if (call.method === "get" && call.arg === key && call.phase === "before" && !raced) {
        raced = true;
        await inner.delete(key);
      }
    });
    expect(await putImmutable(storage, key, Buffer.from("mine"))).toBe("created");
    expect(raced).toBe(true);
    expect((await inner.get(key))?.toString()).toBe("mine");
  });
});
