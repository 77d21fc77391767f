import { cp, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";
import { templar } from "../helpers/registry-process.js";
import { haveTools } from "../helpers/require-tool.js";
import { makeTree, packTemplate } from "../helpers/template-fixture.js";

/** Delta patches and GC: kept while an index of an existing version names them, gone after a DELETE. */
const ready = haveTools("tar", "gzip", "zstd");
const NAME = "deltagc-1-x86_64";
const GC = { graceMs: 0, uploadExpiryMs: 86_400_000 };

describe.skipIf(!ready)("delta indexes and GC", () => {
  let dir: string;
  let r: TestRegistry;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "templar-deltagc-"));
    // previous: 2, so the third version gets patches from both older ones.
    r = await startTestRegistry({ gc: { interval: 0 }, more: { deltas: { previous: 2, level: 3 } } });
    const trees = [join(dir, "a"), join(dir, "b"), join(dir, "c")];
    await makeTree(trees[0]!, 512, "a");
    for (const [i, tree] of trees.entries()) {
      if (i > 0) await cp(trees[i - 1]!, tree, { recursive: true });
      await writeFile(join(tree, "etc", "release"), `release ${i}\n`);
      const t = await packTemplate(tree, join(dir, `out-${i}`), NAME, `1.${i}.0`);
      const pushed = await templar(["push", t.outDir, "--registry", r.url], {
        TEMPLAR_TOKEN: r.tokens.push!,
      });
      expect(pushed.code, pushed.stderr).toBe(0);
    }
    await r.registry.deps.deltas!.idle();
  }, 120_000);

  afterAll(async () => {
    await r?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("makes patches from the N previous versions, keeps them through GC, drops them with their version", async () => {
    const index = await r.store.deltas.get(NAME, "1.2.0");
    expect(index?.deltas.map((d) => d.fromVersion)).toEqual(["1.1.0", "1.0.0"]);
    const patches = index!.deltas.map((d) => d.digest.slice(7));
    const kept = await r.store.gc(GC);
    expect(kept.deleted).toBe(0);
    for (const hex of patches) expect(await r.store.blobs.stat(hex)).not.toBeNull();

    // An index whose version is gone (a crash between DELETE steps, say) is dropped by GC.
    await r.store.deltas.put({ ...index!, version: "9.9.9" });
    const dry = await r.store.gc({ ...GC, dryRun: true });
    expect(dry.deltaIndexesDropped).toBe(1);
    expect(await r.store.deltas.get(NAME, "9.9.9")).not.toBeNull();

    await r.store.deleteVersion(NAME, "1.2.0");
    expect(await r.store.deltas.get(NAME, "1.2.0")).toBeNull();
    const report = await r.store.gc(GC);
    expect(report.deltaIndexesDropped).toBe(1);
    expect(await r.store.deltas.get(NAME, "9.9.9")).toBeNull();
    for (const hex of patches) expect(await r.store.blobs.stat(hex)).toBeNull();
    // The patch of 1.1.0 (from 1.0.0) stays.
    const older = await r.store.deltas.get(NAME, "1.1.0");
    expect(older?.deltas).toHaveLength(1);
    expect(await r.store.blobs.stat(older!.deltas[0]!.digest.slice(7))).not.toBeNull();
    const res = await fetch(`${r.url}/v1/templates/${NAME}/1.2.0/deltas`);
    expect(res.status).toBe(404);
  });

  it("an index that is missing is made on the first request", async () => {
    await r.store.deltas.delete(NAME, "1.1.0");
    const first = await (await fetch(`${r.url}/v1/templates/${NAME}/1.1.0/deltas`)).json();
    expect(first).toMatchObject({ pending: true, deltas: [] });
    await r.registry.deps.deltas!.idle();
    const second = (await (await fetch(`${r.url}/v1/templates/${NAME}/1.1.0/deltas`)).json()) as {
      pending?: boolean;
      deltas: unknown[];
    };
    expect(second.pending).toBeUndefined();
    expect(second.deltas).toHaveLength(1);
  });
});
