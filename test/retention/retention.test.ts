import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import { parseManifest } from "../../common/manifest.js";
import { parseConfig, retentionRules } from "../../registry/config.js";
import type { StorageDriver } from "../../registry/storage/driver.js";
import { LocalDriver } from "../../registry/storage/local-driver.js";
import { S3Driver } from "../../registry/storage/s3-driver.js";
import type { Store } from "../../registry/store/store.js";
import { makeTemplate, sha256, type TemplateFixture } from "../helpers/registry.js";
import { templar } from "../helpers/registry-process.js";
import { type Rgw, rgwForTests } from "../helpers/rgw.js";
import { storeOf } from "../helpers/store.js";

/** Retention rules in GC: exactly the versions no rule keeps go, on local and S3 storage. */
const rgw = await rgwForTests();
const dirs: string[] = [];

afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
  await rgw?.stop();
});

async function push(store: Store, t: TemplateFixture): Promise<void> {
  for (const blob of t.blobs) await store.blobs.put(sha256(blob), Readable.from([blob]));
  expect(await store.publish(parseManifest(t.manifest, t.version), t.manifest)).toBe("created");
}

const CONFIG = `
retention:
  - match: "ret-*"
    keepNewest: 2
    keepTagged: true
  - match: "young-*"
    keepYoungerThan: 1h
`;

async function versions(store: Store, name: string): Promise<string[]> {
  store.versions.invalidate(name);
  return (await store.versions.list(name)).entries.map((e) => e.version.version);
}

async function scenario(driver: StorageDriver): Promise<void> {
  const store = storeOf(driver);
  const rules = retentionRules(parseConfig(CONFIG, "test config"));
  const ret = ["1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0", "2.0.0-rc.1"].map((v) =>
    makeTemplate("ret-1-x86_64", v),
  );
  const young = ["1.0.0", "1.1.0", "1.2.0"].map((v) => makeTemplate("young-1-x86_64", v));
  const other = ["1.0.0", "1.1.0"].map((v) => makeTemplate("other-1-x86_64", v));
  for (const t of [...ret, ...young, ...other]) await push(store, t);
  await store.setTag("ret-1-x86_64", "stable", "1.1.0");

  const gc = { graceMs: 0, uploadExpiryMs: 86_400_000, retention: rules };
  const dry = await store.gc({ ...gc, dryRun: true });
  expect(dry.retention.map((v) => `${v.name}@${v.version}`)).toEqual([
    "ret-1-x86_64@1.2.0",
    "ret-1-x86_64@1.0.0",
  ]);
  expect(await versions(store, "ret-1-x86_64")).toHaveLength(6);

  const report = await store.gc(gc);
  expect(report.retention.map((v) => v.version)).toEqual(["1.2.0", "1.0.0"]);
  // The newest two releases, the tagged one, the newest pre-release.
  expect(await versions(store, "ret-1-x86_64")).toEqual(["2.0.0-rc.1", "1.4.0", "1.3.0", "1.1.0"]);
  expect(await versions(store, "young-1-x86_64")).toHaveLength(3);
  expect(await versions(store, "other-1-x86_64")).toHaveLength(2);
  // The removed versions' blobs went in the same run; the kept ones' stayed.
  for (const t of ret) {
    const gone = t.version === "1.0.0" || t.version === "1.2.0";
    expect((await store.blobs.stat(sha256(t.blobs[0]!))) === null).toBe(gone);
  }
  expect(report.deleted).toBe(2);

  // Two hours later, only the highest release of young-* is kept (what latest follows).
  const later = await store.gc({ ...gc, now: Date.now() + 2 * 3_600_000 });
  expect(later.retention.map((v) => `${v.name}@${v.version}`)).toEqual([
    "young-1-x86_64@1.1.0",
    "young-1-x86_64@1.0.0",
  ]);
  expect(await versions(store, "young-1-x86_64")).toEqual(["1.2.0"]);
}

describe("retention rules", () => {
  it("keep the newest N, the tagged and the young versions, and delete exactly the rest (local)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "templar-retention-"));
    dirs.push(dir);
    const driver = new LocalDriver(join(dir, "data"));
    await driver.check();
    await scenario(driver);
  });

  it.skipIf(!rgw)("do the same on S3 storage", async () => {
    const bucket = await (rgw as Rgw).createBucket();
    await scenario(new S3Driver((rgw as Rgw).options(bucket)));
  });

  it("templar gc --dry-run lists what would go; templar gc deletes it", async () => {
    const dir = await mkdtemp(join(tmpdir(), "templar-retention-cli-"));
    dirs.push(dir);
    const data = join(dir, "data");
    const driver = new LocalDriver(data);
    await driver.check();
    const store = storeOf(driver);
    for (const v of ["1.0.0", "1.1.0", "1.2.0"]) await push(store, makeTemplate("ret-2-x86_64", v));
    const config = join(dir, "registry.yaml");
    await writeFile(config, CONFIG);
    const args = ["gc", "--storage", data, "--config", config, "--grace", "0s"];
    const dry = await templar([...args, "--dry-run"]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain("would delete ret-2-x86_64@1.0.0 (retention rule ret-*)");
    expect(await versions(store, "ret-2-x86_64")).toHaveLength(3);
    const real = await templar([...args, "--json"]);
    expect(real.code, real.stderr).toBe(0);
    expect(JSON.parse(real.stdout).retention).toEqual([
      { name: "ret-2-x86_64", version: "1.0.0", rule: "ret-*" },
    ]);
    expect(await versions(store, "ret-2-x86_64")).toEqual(["1.2.0", "1.1.0"]);
  });

  it("a rule that would keep everything is refused with where it is", () => {
    expect(() => parseConfig("retention:\n  - match: 'x-*'\n", "r.yaml")).toThrow(
      /keepNewest or keepYoungerThan/,
    );
  });
});
