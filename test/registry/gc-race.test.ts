import { createHash } from "node:crypto";
import { mkdtemp, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StoreMirrorTarget } from "../../cli/mirror-to-store.js";
import { parseManifest } from "../../common/manifest.js";
import { createApp } from "../../registry/app.js";
import { createDeps } from "../../registry/server.js";
import type { StorageDriver } from "../../registry/storage/driver.js";
import { LocalDriver } from "../../registry/storage/local-driver.js";
import { type Call, gate, hooked } from "../helpers/hooked-storage.js";
import { bearer, makeTemplate, sha256, type TemplateFixture, writeConfig } from "../helpers/registry.js";
import { blobKey, gcOn, storeOf } from "../helpers/store.js";

/**
 * GC racing manifest publishers, one exact interleaving per test (storage calls stopped at gates).
 * The rule every test checks: a manifest acknowledged with a 2xx stays, and so does every blob
 * it names, with the right bytes.
 */
const HOUR = 3_600_000;
const GC = { graceMs: HOUR, uploadExpiryMs: 24 * HOUR };

let dir: string;
let configPath: string;
let token: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "templar-gc-race-"));
  configPath = join(dir, "registry.yaml");
  ({ push: token } = (await writeConfig(configPath, { tokens: { push: ["push:*", "delete:*"] } })) as {
    push: string;
  });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

type App = ReturnType<typeof createApp>;

/** A fresh storage holding `t`'s blobs, two hours old (GC's to delete while no manifest names them). */
async function world(label: string, t: TemplateFixture) {
  const root = join(dir, label);
  const inner = new LocalDriver(root);
  await inner.check();
  for (const blob of t.blobs) await addOldBlob(inner, root, blob);
  const app = async (hook?: (call: Call) => Promise<void> | void): Promise<App> =>
    createApp(await createDeps({ storage: hook ? hooked(inner, hook) : inner, configPath, log: () => {} }));
  return { inner, root, app };
}

async function addOldBlob(storage: StorageDriver, root: string, blob: Buffer): Promise<void> {
  await storeOf(storage).blobs.put(sha256(blob), Readable.from([blob]));
  const old = new Date(Date.now() - 2 * HOUR);
  await utimes(join(root, "blobs", "sha256", sha256(blob)), old, old);
}

const put = (app: App, t: TemplateFixture) =>
  app.request(`/v1/templates/${t.name}/${t.version}`, {
    method: "PUT",
    headers: bearer(token),
    body: t.manifest,
  });

async function code(res: Response): Promise<string> {
  return ((await res.clone().json()) as { error?: { code: string } }).error?.code ?? "";
}

/** The rule: if any response acknowledged `t`, its manifest and every blob are there, intact. */
async function expectAcknowledgedIntact(storage: StorageDriver, t: TemplateFixture, responses: Response[]) {
  if (!responses.some((r) => r.status >= 200 && r.status < 300)) return;
  const manifest = await storage.get(`templates/${t.name}/versions/${t.version}.json`);
  expect(manifest?.equals(t.manifest), "the acknowledged manifest is there, unchanged").toBe(true);
  for (const blob of t.blobs) {
    const stream = await storeOf(storage).blobs.read(sha256(blob));
    expect(stream, `blob ${sha256(blob)} of an acknowledged manifest`).not.toBeNull();
    const hash = createHash("sha256");
    for await (const chunk of stream!) hash.update(chunk as Buffer);
    expect(hash.digest("hex")).toBe(sha256(blob));
  }
}

const isMark = (call: Call, hex: string) => call.arg === `gc/pending/${hex}`;
const manifestKey = (t: TemplateFixture) => `templates/${t.name}/versions/${t.version}.json`;

describe("manifest PUTs racing an online GC", () => {
  it("two identical PUTs while GC has their blob marked: no 2xx for a manifest GC then breaks", async () => {
    const t = makeTemplate("debian-13-x86_64-twins", "1.0.0");
    const hex = sha256(t.blobs[0]!);
    const { inner, app } = await world("twins", t);
    // GC stops right before it deletes the blob: marked, last scan done.
    const gcAtDelete = gate();
    const putsDone = gate();
    const gc = gcOn(
      hooked(inner, async (call) => {
        if (call.method === "delete" && call.arg === blobKey(hex) && call.phase === "before") {
          gcAtDelete.open();
          await putsDone.promise;
        }
      }),
      GC,
    );
    await gcAtDelete.promise;
    // PUT A stops right after it created the manifest (if it gets that far) until B is answered.
    const aCreated = gate();
    const bAnswered = gate();
    let first = true;
    const registry = await app(async (call) => {
      if (call.method === "putIfAbsent" && call.arg === manifestKey(t) && call.phase === "after" && first) {
        first = false;
        aCreated.open();
        await bAnswered.promise;
      }
    });
    const a = put(registry, t);
    await Promise.race([aCreated.promise, a]);
    const b = await put(registry, t);
    bAnswered.open();
    const responses = [await a, b];
    putsDone.open();
    await gc;

    await expectAcknowledgedIntact(inner, t, responses);
    // The blob was marked by a live run: both back off, and nothing was written.
    expect(responses.map((r) => r.status)).toEqual([503, 503]);
    expect(await code(b)).toBe("GC_IN_PROGRESS");
    expect(await inner.get(manifestKey(t))).toBeNull();
  });

  it("a PUT between its checks and its write when GC marks: its pin keeps the blob", async () => {
    const t = makeTemplate("debian-13-x86_64-pinned", "1.0.0");
    const { inner, app } = await world("pinned", t);
    const atWrite = gate();
    const gcDone = gate();
    const registry = await app(async (call) => {
      if (call.method === "putIfAbsent" && call.arg === manifestKey(t) && call.phase === "before") {
        atWrite.open();
        await gcDone.promise;
      }
    });
    const a = put(registry, t);
    await atWrite.promise;
    const report = await gcOn(inner, GC); // marks the blob, then finds the pin
    gcDone.open();
    const responses = [await a, await put(registry, t)];
    expect(responses.map((r) => r.status)).toEqual([201, 200]);
    expect(report.deleted).toBe(0);
    await expectAcknowledgedIntact(inner, t, responses);
    expect([...(await list(inner, "gc/"))]).toEqual([]); // marks, pins and run records all gone
  });

  it("a PUT that checked before the mark and finished before GC's last scan: the scan finds its manifest", async () => {
    const t = makeTemplate("debian-13-x86_64-beforemark", "1.0.0");
    const hex = sha256(t.blobs[0]!);
    const { inner, app } = await world("beforemark", t);
    const checked = gate();
    const marked = gate();
    const pushed = gate();
    const gcDone = gate();
    let once = true;
    const registry = await app(async (call) => {
      if (call.method === "get" && isMark(call, hex) && call.phase === "after" && once) {
        once = false;
        checked.open(); // no mark yet: this PUT goes ahead
        await Promise.race([marked.promise, gcDone.promise]);
      }
    });
    const a = put(registry, t);
    await checked.promise;
    const gc = gcOn(
      hooked(inner, async (call) => {
        if (call.method === "put" && isMark(call, hex) && call.phase === "after") {
          marked.open();
          await pushed.promise; // the PUT writes its manifest and removes its pin meanwhile
        }
      }),
      GC,
    ).finally(() => gcDone.open());
    const res = await a;
    pushed.open();
    const report = await gc;
    expect(res.status).toBe(201);
    expect(report.deleted).toBe(0);
    await expectAcknowledgedIntact(inner, t, [res]);
  });

  it("a version deleted and pushed again during a run, naming another blob: the last scan reads it again", async () => {
    const before = makeTemplate("debian-13-x86_64-again", "1.0.0");
    const after = makeTemplate("debian-13-x86_64-again", "1.0.0", { distro: "ubuntu" });
    const hex = sha256(after.blobs[0]!);
    const { inner, root, app } = await world("again", before);
    await addOldBlob(inner, root, after.blobs[0]!);
    const registry = await app();
    expect((await put(registry, before)).status).toBe(201);
    let res: Response | undefined;
    const report = await gcOn(
      hooked(inner, async (call) => {
        // After GC's first scans read `before` (which does not name the blob), before its mark.
        if (call.method === "put" && isMark(call, hex) && call.phase === "before" && !res) {
          const del = await registry.request(`/v1/templates/${before.name}/1.0.0`, {
            method: "DELETE",
            headers: bearer(token),
          });
          expect(del.status).toBe(204);
          res = await put(registry, after);
        }
      }),
      GC,
    );
    expect(res?.status).toBe(201);
    expect(report.deleted).toBe(0); // (`before`'s blob was named when this run listed it: the next run's)
    await expectAcknowledgedIntact(inner, after, [res!]);
  });
});

describe("marks expire with their GC run", () => {
  it("a crashed run's marks stop blocking PUTs once its heartbeat is 30 s old; the next run removes them", async () => {
    const t = makeTemplate("debian-13-x86_64-crashedrun", "1.0.0");
    const live = makeTemplate("debian-13-x86_64-liverun", "1.0.0");
    const { inner, app } = await world("crashedrun", t);
    await storeOf(inner).blobs.put(sha256(live.blobs[0]!), Readable.from([live.blobs[0]!])); // young: GC leaves it
    const now = Date.now();
    await inner.put("gc/runs/run-crashed", Buffer.from(String(now - 31_000)));
    await inner.put(`gc/pending/${sha256(t.blobs[0]!)}`, Buffer.from(`${now - 35_000} run-crashed`));
    await inner.put("gc/runs/run-live", Buffer.from(String(now)));
    await inner.put(`gc/pending/${sha256(live.blobs[0]!)}`, Buffer.from(`${now} run-live`));
    const registry = await app();

    const res = await put(registry, t);
    expect(res.status).toBe(201);
    await expectAcknowledgedIntact(inner, t, [res]);
    const blocked = await put(registry, live); // a live run's mark still counts
    expect(blocked.status).toBe(503);
    expect(blocked.headers.get("retry-after")).toBe("5");
    expect(await code(blocked)).toBe("GC_IN_PROGRESS");

    await gcOn(inner, GC);
    expect(await inner.get(`gc/pending/${sha256(t.blobs[0]!)}`)).toBeNull();
    expect(await inner.get("gc/runs/run-crashed")).toBeNull();
    expect(await inner.get(`gc/pending/${sha256(live.blobs[0]!)}`)).not.toBeNull();
    expect(await inner.get("gc/runs/run-live")).not.toBeNull();
  });

  it("a run whose heartbeat lapses stops deleting (pushes may be ignoring its marks by then)", async () => {
    const t = makeTemplate("debian-13-x86_64-lapsed", "1.0.0");
    const hex = sha256(t.blobs[0]!);
    const { inner } = await world("lapsed", t);
    let beats = 0;
    const stalled = hooked(inner, async (call) => {
      if (call.phase !== "before") return;
      // Storage grows slow for the run's heartbeat after its first one...
      if (call.method === "put" && String(call.arg).startsWith("gc/runs/") && ++beats > 1)
        await new Promise((r) => setTimeout(r, 1000));
      // ...and the run is held up between its marks and its last scan for longer than half its timeout.
      if (call.method === "list" && call.arg === "gc/pins/") await new Promise((r) => setTimeout(r, 500));
    });
    const err = await gcOn(stalled, { ...GC, runTimeoutMs: 600, heartbeatMs: 50 }).catch((e: Error) => e);
    expect(String(err)).toMatch(/heartbeat in storage lapsed/);
    expect(await storeOf(inner).blobs.stat(hex)).not.toBeNull();
    expect(await inner.get(`gc/pending/${hex}`)).toBeNull();
  });
});

describe("templar mirror into storage that a registry collects", () => {
  it("publishes through the same checks as a PUT: a blob GC is deleting is copied again", async () => {
    const t = makeTemplate("debian-13-x86_64-mirrored", "1.0.0");
    const hex = sha256(t.blobs[0]!);
    const { inner } = await world("mirrored", t);
    const file = join(dir, "mirrored-blob");
    await writeFile(file, t.blobs[0]!);
    let fetched = 0;
    const gcAtDelete = gate();
    const mirrorChecked = gate();
    const gc = gcOn(
      hooked(inner, async (call) => {
        if (call.method === "delete" && call.arg === blobKey(hex) && call.phase === "before") {
          gcAtDelete.open();
          await mirrorChecked.promise;
        }
      }),
      GC,
    );
    await gcAtDelete.promise;
    // The mirror finds the blob there (GC has it marked) and publishes its manifest.
    const target = new StoreMirrorTarget(
      storeOf(
        hooked(inner, (call) => {
          if (call.method === "get" && isMark(call, hex) && call.phase === "after") mirrorChecked.open();
        }),
      ),
      "the bucket",
    );
    const source = {
      name: t.name,
      version: t.version,
      bytes: t.manifest,
      manifest: parseManifest(t.manifest, "manifest"),
      signature: null,
      artifactSignatures: new Map<string, Buffer>(),
    };
    const published = target.publish(source, async () => {
      fetched++;
      return file;
    });
    await Promise.race([mirrorChecked.promise, published.catch(() => {})]);
    mirrorChecked.open();
    const report = await gc;
    expect(report.deleted).toBe(1); // the blob was GC's: the mirror's first try backed off
    expect(await published).toBe(1); // ...and copied it again
    expect(fetched).toBe(1);
    await expectAcknowledgedIntact(inner, t, [new Response(null, { status: 201 })]);
  });
});

async function list(storage: StorageDriver, prefix: string): Promise<Set<string>> {
  const keys = new Set<string>();
  for await (const o of storage.list(prefix)) keys.add(o.key);
  return keys;
}
