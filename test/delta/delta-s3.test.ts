import { createReadStream } from "node:fs";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseManifest } from "../../common/manifest.js";
import { DeltaMaker } from "../../registry/deltas/maker.js";
import { S3Driver } from "../../registry/storage/s3-driver.js";
import { haveTools } from "../helpers/require-tool.js";
import { type Rgw, rgwForTests } from "../helpers/rgw.js";
import { storeOf } from "../helpers/store.js";
import { makeTree, packTemplate } from "../helpers/template-fixture.js";

/** Delta patches made through the store on S3 storage, kept by GC, dropped with their version. */
const ready = haveTools("tar", "gzip", "zstd");
const rgw = ready ? await rgwForTests() : null;
const NAME = "deltas3-1-x86_64";

describe.skipIf(!rgw)("delta patches on S3 storage", () => {
  let dir: string;
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    await rgw?.stop();
  });

  it("makes, keeps and drops them like on a local directory", async () => {
    dir = await mkdtemp(join(tmpdir(), "templar-deltas3-"));
    const store = storeOf(new S3Driver((rgw as Rgw).options(await (rgw as Rgw).createBucket())));
    const a = join(dir, "a");
    const b = join(dir, "b");
    await makeTree(a, 256, "a");
    await cp(a, b, { recursive: true });
    await writeFile(join(b, "etc", "motd"), "updated\n");
    for (const [tree, version] of [
      [a, "1.0.0"],
      [b, "1.1.0"],
    ] as const) {
      const t = await packTemplate(tree, join(dir, `out-${version}`), NAME, version);
      for (const art of t.manifest.artifacts) {
        const file = join(t.outDir, `${NAME}-${version}.${art.format}`);
        await store.blobs.put(art.digest.slice(7), createReadStream(file));
      }
      const bytes = await readFile(t.manifestPath);
      await store.publish(parseManifest(bytes, t.manifestPath), bytes);
    }
    const logs: Record<string, unknown>[] = [];
    const maker = new DeltaMaker(
      store,
      async () => ({ previous: 3, level: 3, maxWindowLog: 30 }),
      (e) => logs.push(e),
    );
    const index = await maker.make(NAME, "1.1.0");
    expect(index?.deltas.map((d) => d.fromVersion)).toEqual(["1.0.0"]);
    expect((await store.deltas.get(NAME, "1.1.0"))?.deltas).toHaveLength(1);
    const hex = index!.deltas[0]!.digest.slice(7);
    const gc = { graceMs: 0, uploadExpiryMs: 86_400_000 };
    expect((await store.gc(gc)).deleted).toBe(0);
    expect(await store.blobs.stat(hex)).not.toBeNull();
    await store.deleteVersion(NAME, "1.1.0");
    expect(await store.deltas.get(NAME, "1.1.0")).toBeNull();
    await store.gc(gc);
    expect(await store.blobs.stat(hex)).toBeNull();
  }, 120_000);
});
