import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalDriver } from "../../registry/storage/local-driver.js";
import { BlobNames } from "../../registry/store/blob-names.js";
import { layout as keys } from "../../registry/store/layout.js";
import { SummaryCache } from "../../registry/store/summaries.js";

const hex = (c: string) => c.repeat(64);

describe("BlobNames: which templates name a blob", () => {
  let dir: string;
  let storage: LocalDriver;
  let listings = 0;
  let ttl = 60_000;
  let names: BlobNames;

  const publish = (name: string, version: string, ...blobs: string[]) =>
    storage.put(
      keys.manifest(name, version),
      Buffer.from(
        JSON.stringify({
          name,
          version,
          artifacts: blobs.map((b) => ({ format: "tar.gz", digest: `sha256:${b}`, size: 1 })),
        }),
      ),
    );

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "templar-blob-names-"));
    storage = new LocalDriver(dir);
    const list = storage.list.bind(storage);
    storage.list = (prefix: string) => {
      if (prefix === keys.templates) listings++;
      return list(prefix);
    };
    names = new BlobNames(storage, new SummaryCache(storage), () => ttl);
    await publish("debian-13", "1.0.0", hex("a"), hex("5"));
    await publish("centos-10", "1.0.0", hex("c"), hex("5"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const debian = (name: string) => name.startsWith("debian-");

  it("answers from one listing while the map is young, for hits", async () => {
    expect(await names.namedWithin(hex("a"), debian)).toBe(true);
    expect(await names.namedWithin(hex("5"), debian)).toBe(true);
    expect(await names.namedWithin(hex("c"), (n) => n === "centos-10")).toBe(true);
    expect(listings).toBe(1);
  });

  it("lists again for a refusal, one listing at a time for all refusals waiting at once", async () => {
    const before = listings;
    const answers = await Promise.all(Array.from({ length: 20 }, () => names.namedWithin(hex("c"), debian)));
    expect(answers.every((a) => a === false)).toBe(true);
    // The one under way when a refusal arrives, and at most one after it for those that came later.
    expect(listings - before).toBeGreaterThanOrEqual(1);
    expect(listings - before).toBeLessThanOrEqual(2);
  });

  it("finds a manifest written since the map was built (another replica's push)", async () => {
    await publish("debian-13", "1.1.0", hex("c"));
    expect(await names.namedWithin(hex("c"), debian)).toBe(true);
  });

  it("forgets a deleted version at once after invalidate()", async () => {
    await storage.delete(keys.manifest("debian-13", "1.1.0"));
    expect(await names.namedWithin(hex("c"), debian)).toBe(true); // still the young map
    names.invalidate();
    expect(await names.namedWithin(hex("c"), debian)).toBe(false);
  });

  it("refreshes in the background after the TTL, answering hits meanwhile", async () => {
    ttl = 1;
    await new Promise((ok) => setTimeout(ok, 5));
    const before = listings;
    expect(await names.namedWithin(hex("a"), debian)).toBe(true);
    await new Promise((ok) => setTimeout(ok, 50));
    expect(listings - before).toBe(1);
    ttl = 60_000;
  });
});
