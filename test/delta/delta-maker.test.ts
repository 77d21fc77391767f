import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeTemplate, pushTemplate, startTestRegistry, type TestRegistry } from "../helpers/registry.js";
import { haveTools } from "../helpers/require-tool.js";

/**
 * The background delta maker meets artifacts it cannot unpack (a push is checked for its
 * digests, not for being a well-formed tar.zst): the job fails and is logged, the version stays
 * served without deltas, and the registry process lives on (a failed zstd must not become an
 * unhandled rejection, which would end it).
 */
const ready = haveTools("zstd");

describe.skipIf(!ready)("delta maker and artifacts that are not tars", () => {
  let r: TestRegistry;
  beforeAll(async () => {
    r = await startTestRegistry({ gc: { interval: 0 }, more: { deltas: { previous: 1, level: 3 } } });
  });
  afterAll(async () => {
    await r?.close();
  });

  it("logs the failed job, serves the version without deltas and keeps running", async () => {
    for (const version of ["1.0.0", "1.1.0", "1.2.0"]) {
      const t = makeTemplate("notatar-1-x86_64", version);
      expect((await pushTemplate(r.url, r.tokens.push!, t)).status).toBe(201);
    }
    await r.registry.deps.deltas!.idle();
    // Give a stray rejection from the killed pipeline a turn of the event loop to surface.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const failed = r.logs.filter((e) => e.event === "deltas-failed");
    expect(failed.map((e) => e.version).sort()).toEqual(["1.1.0", "1.2.0"]);
    expect(String(failed[0]!.error)).toMatch(/zstd failed/);
    const index = await fetch(`${r.url}/v1/templates/notatar-1-x86_64/1.2.0/deltas`);
    expect(index.status).toBe(200);
    expect(((await index.json()) as { deltas: unknown[] }).deltas).toEqual([]);
    expect((await fetch(`${r.url}/v1/templates/notatar-1-x86_64/1.2.0`)).status).toBe(200);
  });
});
