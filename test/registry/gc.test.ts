import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RegistryClient } from "../../client/http.js";
import { loadLocalTemplate, pushTemplate as push } from "../../client/push.js";
import { artifactFileName } from "../../common/manifest-files.js";
import { createApp } from "../../registry/app.js";
import { createDeps, startRegistry } from "../../registry/server.js";
import { LocalDriver } from "../../registry/storage/local-driver.js";
import {
  CLI,
  makeTemplate,
  pushTemplate,
  sha256,
  spawnServe,
  startTestRegistry,
  type TestRegistry,
  writeConfig,
} from "../helpers/registry.js";
import { blobKey, gcOn, storeOf } from "../helpers/store.js";

const run = promisify(execFile);
const HOUR = 3_600_000;

let r: TestRegistry;
beforeAll(async () => {
  r = await startTestRegistry();
});
afterAll(async () => {
  await r?.close();
});

/** Makes a blob (or upload) look `ms` old. */
async function age(path: string, ms: number) {
  const t = new Date(Date.now() - ms);
  await utimes(path, t, t);
}
const blobPath = (hex: string) => join(r.storageDir, "blobs", "sha256", hex);

describe("gc", () => {
  it("keeps referenced and young blobs, deletes old orphans, expires abandoned uploads", async () => {
    const kept = makeTemplate("debian-13-x86_64-gc", "1.0.0");
    expect((await pushTemplate(r.url, r.tokens.push!, kept)).status).toBe(201);
    const referenced = sha256(kept.blobs[0]!);
    const young = randomBytes(1000);
    const old = randomBytes(2000);
    for (const b of [young, old]) await storeOf(r.storage).blobs.put(sha256(b), Readable.from([b]));
    await age(blobPath(referenced), 5 * HOUR);
    await age(blobPath(sha256(old)), 2 * HOUR);
    const abandoned = await storeOf(r.storage).uploads.create("o");
    const fresh = await storeOf(r.storage).uploads.create("o");

    const dry = await gcOn(r.storage, { graceMs: HOUR, uploadExpiryMs: 24 * HOUR, dryRun: true });
    expect(dry).toMatchObject({ deleted: 1, bytesFreed: 2000, dryRun: true });
    expect(await storeOf(r.storage).blobs.stat(sha256(old))).not.toBeNull(); // a dry run deletes nothing

    const report = await gcOn(r.storage, {
      graceMs: HOUR,
      uploadExpiryMs: 24 * HOUR,
      now: Date.now(),
    });
    expect(report).toMatchObject({ deleted: 1, bytesFreed: 2000, keptYoung: 1 });
    expect(report.referenced).toBeGreaterThanOrEqual(1);
    expect(await storeOf(r.storage).blobs.stat(sha256(old))).toBeNull();
    expect(await storeOf(r.storage).blobs.stat(referenced)).not.toBeNull();
    expect(await storeOf(r.storage).blobs.stat(sha256(young))).not.toBeNull();
    // The template is still pullable, bytes intact.
    const blob = Buffer.from(await (await fetch(`${r.url}/v1/blobs/sha256:${referenced}`)).arrayBuffer());
    expect(sha256(blob)).toBe(referenced);

    // Uploads: with "now" two days ahead both are abandoned; GC removes them.
    const later = await gcOn(r.storage, {
      graceMs: HOUR,
      uploadExpiryMs: 24 * HOUR,
      now: Date.now() + 48 * HOUR,
    });
    expect(later.uploadsExpired).toBeGreaterThanOrEqual(2);
    expect(await storeOf(r.storage).uploads.state(abandoned.id, "o")).toBeNull();
    expect(await storeOf(r.storage).uploads.state(fresh.id, "o")).toBeNull();
    // ...and an orphan of a deleted version goes once it is old.
    expect(await storeOf(r.storage).blobs.stat(referenced)).not.toBeNull();
  });

  it("frees a deleted version's blobs at the next run", async () => {
    const t = makeTemplate("debian-13-x86_64-gc2", "1.0.0");
    expect((await pushTemplate(r.url, r.tokens.push!, t)).status).toBe(201);
    const hex = sha256(t.blobs[0]!);
    await age(blobPath(hex), 2 * HOUR);
    expect((await gcOn(r.storage, { graceMs: HOUR, uploadExpiryMs: 24 * HOUR })).deleted).toBe(0);
    await r.storage.delete(`templates/${t.name}/versions/1.0.0.json`);
    const report = await gcOn(r.storage, { graceMs: HOUR, uploadExpiryMs: 24 * HOUR });
    expect(report.deleted).toBe(1);
    expect(await storeOf(r.storage).blobs.stat(hex)).toBeNull();
  });

  it("with --grace 0s, a write still in flight is not swept as abandoned", async () => {
    const driver = new LocalDriver(r.storageDir);
    const writer = await driver.write("tags/debian-13-x86_64-inflight/wip");
    writer.stream.write(Buffer.from("half"));
    const report = await gcOn(r.storage, { graceMs: 0, uploadExpiryMs: 24 * HOUR });
    expect(report.partialWritesAborted).toBe(0);
    writer.stream.end(Buffer.from(" and the rest"));
    expect(await writer.done).toBe(true);
    expect((await driver.get("tags/debian-13-x86_64-inflight/wip"))?.toString()).toBe("half and the rest");
    await driver.delete("tags/debian-13-x86_64-inflight/wip");
  });

  it("templar gc --dry-run and --grace from the command line", async () => {
    const orphan = randomBytes(3000);
    await storeOf(r.storage).blobs.put(sha256(orphan), Readable.from([orphan]));
    await age(blobPath(sha256(orphan)), 30 * 60_000);
    const args = ["gc", "--storage", r.storageDir, "--config", r.configPath, "--json"];
    const dry = JSON.parse(
      (await run(process.execPath, [CLI, ...args, "--dry-run", "--grace", "10m"])).stdout,
    );
    expect(dry).toMatchObject({ dryRun: true, deleted: 1 });
    const keep = JSON.parse((await run(process.execPath, [CLI, ...args])).stdout); // default grace 1h
    expect(keep).toMatchObject({ deleted: 0 });
    const go = JSON.parse((await run(process.execPath, [CLI, ...args, "--grace", "10m"])).stdout);
    expect(go).toMatchObject({ deleted: 1, bytesFreed: 3000 });
    expect(await storeOf(r.storage).blobs.stat(sha256(orphan))).toBeNull();
    const bad = await run(process.execPath, [CLI, ...args, "--grace", "soon"]).catch((e) => e);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("--grace");
  });

  it("runs periodically inside templar serve", async () => {
    const configPath = join(r.dir, "gc-often.yaml");
    await writeConfig(configPath, { gc: { interval: "500ms", grace: "1m" } });
    const orphan = randomBytes(4000);
    await storeOf(r.storage).blobs.put(sha256(orphan), Readable.from([orphan]));
    await age(blobPath(sha256(orphan)), 5 * 60_000);
    const server = await spawnServe(r.storageDir, configPath);
    try {
      const deadline = Date.now() + 10_000;
      const gcLogged = () => server.stdout.some((l) => l.includes('"event":"gc"'));
      while (
        Date.now() < deadline &&
        ((await storeOf(r.storage).blobs.stat(sha256(orphan))) !== null || !gcLogged())
      ) {
        await new Promise((ok) => setTimeout(ok, 100));
      }
      expect(await storeOf(r.storage).blobs.stat(sha256(orphan))).toBeNull();
      const gcLine = server.stdout.map((l) => JSON.parse(l)).find((l) => l.event === "gc");
      expect(gcLine).toMatchObject({ deleted: expect.any(Number) });
    } finally {
      await server.stop();
    }
  });
});

describe("gc racing a push", () => {
  it("a blob GC removed just before the PUT's checks: 400 BLOB_UNKNOWN, nothing published", async () => {
    const inner = new LocalDriver(r.storageDir);
    const t = makeTemplate("debian-13-x86_64-gcrace", "1.0.0");
    const hex = sha256(t.blobs[0]!);
    await storeOf(inner).blobs.put(hex, Readable.from([t.blobs[0]!]));
    // Storage whose pin write first lets "GC" delete the blob (a run that ended just before).
    const racing = Object.create(inner) as typeof inner;
    racing.put = async (key: string, data: Buffer) => {
      if (key.startsWith("gc/pins/")) await inner.delete(blobKey(hex));
      return inner.put(key, data);
    };
    const app = createApp(await createDeps({ storage: racing, configPath: r.configPath, log: () => {} }));
    const res = await app.request(`/v1/templates/${t.name}/1.0.0`, {
      method: "PUT",
      headers: { authorization: `Bearer ${r.tokens.push}` },
      body: t.manifest,
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("BLOB_UNKNOWN");
    expect(await inner.get(`templates/${t.name}/versions/1.0.0.json`)).toBeNull();
  });
});

describe("gc marks what it deletes, and a push that races it never leaves a manifest naming a missing blob", () => {
  async function orphan(name: string) {
    const inner = new LocalDriver(r.storageDir);
    const t = makeTemplate(name, "1.0.0");
    const hex = sha256(t.blobs[0]!);
    await storeOf(inner).blobs.put(hex, Readable.from([t.blobs[0]!]));
    await age(blobPath(hex), 2 * HOUR); // old and unreferenced: GC's to delete
    return { inner, t, hex, manifestKey: `templates/${name}/versions/1.0.0.json` };
  }
  const putManifest = (t: ReturnType<typeof makeTemplate>) =>
    fetch(`${r.url}/v1/templates/${t.name}/1.0.0`, {
      method: "PUT",
      headers: { authorization: `Bearer ${r.tokens.push}` },
      body: t.manifest,
    });

  it("a push landing after the marks backs off with 503, and GC deletes the blob", async () => {
    const { inner, t, hex, manifestKey } = await orphan("debian-13-x86_64-gcmark");
    // GC's storage: right before it deletes the blob, the push arrives (the worst moment).
    let push: Response | undefined;
    const racing = Object.create(inner) as typeof inner;
    racing.delete = async (key: string) => {
      if (key === blobKey(hex)) push ??= await putManifest(t);
      return inner.delete(key);
    };
    const report = await gcOn(racing, { graceMs: HOUR, uploadExpiryMs: 24 * HOUR });
    expect(push?.status).toBe(503);
    expect(push?.headers.get("retry-after")).toBe("5");
    expect(((await push!.json()) as { error: { code: string } }).error.code).toBe("GC_IN_PROGRESS");
    expect(report.deleted).toBeGreaterThanOrEqual(1);
    expect(await storeOf(inner).blobs.stat(hex)).toBeNull();
    expect(await inner.get(manifestKey)).toBeNull();
    expect(await inner.get(`gc/pending/${hex}`)).toBeNull(); // marks are removed
  });

  it("a push landing before the marks are written saves its blob", async () => {
    const { inner, t, hex, manifestKey } = await orphan("debian-13-x86_64-gcsave");
    let push: Response | undefined;
    const racing = Object.create(inner) as typeof inner;
    racing.put = async (key: string, data: Buffer) => {
      if (key === `gc/pending/${hex}`) push ??= await putManifest(t);
      return inner.put(key, data);
    };
    const report = await gcOn(racing, { graceMs: HOUR, uploadExpiryMs: 24 * HOUR });
    expect(push?.status).toBe(201);
    expect(report.deleted).toBe(0);
    expect(await storeOf(inner).blobs.stat(hex)).not.toBeNull();
    expect(await inner.get(manifestKey)).not.toBeNull();
  });

  it("when another replica's GC marks the same blob meanwhile, only that run may delete it", async () => {
    const { inner, hex } = await orphan("debian-13-x86_64-gctwo");
    const theirs = Buffer.from(`${Date.now()} other-replica-run`);
    const racing = Object.create(inner) as typeof inner;
    racing.put = async (key: string, data: Buffer) => {
      await inner.put(key, data);
      if (key === `gc/pending/${hex}`) await inner.put(key, theirs); // the other run, right after
    };
    const report = await gcOn(racing, { graceMs: HOUR, uploadExpiryMs: 24 * HOUR });
    expect(report.deleted).toBe(0);
    expect(await storeOf(inner).blobs.stat(hex)).not.toBeNull();
    expect(await inner.get(`gc/pending/${hex}`)).toEqual(theirs); // not ours to remove
    await inner.delete(`gc/pending/${hex}`);
  });

  it("a mark of a finished or unknown run blocks nobody and is removed by the next run", async () => {
    const { inner, t, hex, manifestKey } = await orphan("debian-13-x86_64-gcstale");
    await inner.put(`gc/pending/${hex}`, Buffer.from(`${Date.now()} run-gone`));
    const fresh = randomBytes(64);
    await inner.put("gc/runs/run-busy", Buffer.from(String(Date.now())));
    await inner.put(`gc/pending/${sha256(fresh)}`, Buffer.from(`${Date.now()} run-busy`));
    expect((await putManifest(t)).status).toBe(201);
    expect(await inner.get(manifestKey)).not.toBeNull();
    await gcOn(inner, { graceMs: HOUR, uploadExpiryMs: 24 * HOUR });
    expect(await inner.get(`gc/pending/${hex}`)).toBeNull();
    // A live run's mark (another replica's GC at work) is left alone.
    expect(await inner.get(`gc/pending/${sha256(fresh)}`)).not.toBeNull();
    await inner.delete(`gc/pending/${sha256(fresh)}`);
    await inner.delete("gc/runs/run-busy");
  });

  it("templar push uploads again a blob that GC took between its check and the manifest", async () => {
    const { inner, t, hex, manifestKey } = await orphan("debian-13-x86_64-gcagain");
    // The registry's storage: GC deletes the blob between push's HEAD and its manifest PUT.
    const racing = Object.create(inner) as typeof inner;
    let raced = false;
    racing.put = async (key: string, data: Buffer) => {
      if (key.startsWith("gc/pins/") && !raced) {
        raced = true;
        await inner.delete(blobKey(hex));
      }
      return inner.put(key, data);
    };
    const server = await startRegistry({
      storage: racing,
      configPath: r.configPath,
      log: () => {},
      host: "127.0.0.1",
      port: 0,
    });
    try {
      const dir = join(r.dir, "gcagain");
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, `${t.name}-1.0.0.manifest.json`), t.manifest);
      await writeFile(join(dir, artifactFileName(t.name, "1.0.0", "tar.zst")), t.blobs[0]!);
      const local = await loadLocalTemplate(join(dir, `${t.name}-1.0.0.manifest.json`));
      const client = new RegistryClient({ registry: server.url, token: r.tokens.push, backoffMs: 10 });
      const result = await push(client, local);
      expect(raced).toBe(true);
      expect(result.uploaded).toBe(1); // the first round found the blob there; the second sent it
      expect(await storeOf(inner).blobs.stat(hex)).not.toBeNull();
      expect(await inner.get(manifestKey)).not.toBeNull();
    } finally {
      await server.close();
    }
  });
});
