import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  bearer,
  makeTemplate,
  type ServeProcess,
  sha256,
  spawnServe,
  writeConfig,
} from "../helpers/registry.js";

const MiB = 1 << 20;

/** A request body that trickles `data` out in 64 KiB pieces, so a kill lands mid-stream. */
function slowBody(data: Buffer, delayMs: number): ReadableStream<Uint8Array> {
  let offset = 0;
  return new ReadableStream({
    async pull(controller) {
      if (offset >= data.length) {
        controller.close();
        return;
      }
      await new Promise((r) => setTimeout(r, delayMs));
      const end = Math.min(offset + 65536, data.length);
      controller.enqueue(new Uint8Array(data.subarray(offset, end)));
      offset = end;
    },
  });
}

describe("a registry killed with SIGKILL in the middle of 20 concurrent uploads", () => {
  let dir: string;
  let storageDir: string;
  let configPath: string;
  let token: string;
  let server: ServeProcess;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "templar-crash-"));
    configPath = join(dir, "registry.yaml");
    storageDir = join(dir, "data");
    token = (await writeConfig(configPath, { tokens: { push: ["push:*"] } })).push!;
    server = await spawnServe(storageDir, configPath);
  });
  afterAll(async () => {
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("restarts with every acknowledged upload intact, no corrupt blob, no manifest naming a missing blob", async () => {
    const auth = bearer(token);
    const url = server.url;
    // 20 uploads: monolithic PUTs and resumable ones, quick and slow, each followed by a manifest.
    const jobs = Array.from({ length: 20 }, (_, i) => ({
      i,
      data: randomBytes(MiB + i * 97_000),
      resumable: i % 2 === 1,
      delay: i < 6 ? 0 : 15 + (i % 5) * 10,
    }));
    const acknowledged = new Set<string>();
    const manifestsAcknowledged: { name: string; version: string; manifest: Buffer }[] = [];
    const uploadIds = new Map<string, number>();

    const runJob = async (job: (typeof jobs)[number]) => {
      const hex = sha256(job.data);
      if (job.resumable) {
        const open = await fetch(`${url}/v1/uploads`, { method: "POST", headers: auth });
        const { id } = (await open.json()) as { id: string };
        uploadIds.set(id, job.data.length);
        const half = Math.floor(job.data.length / 2);
        const first = await fetch(`${url}/v1/uploads/${id}`, {
          method: "PATCH",
          headers: { ...auth, "content-range": `bytes 0-${half - 1}/${job.data.length}` },
          body: slowBody(job.data.subarray(0, half), job.delay),
          duplex: "half",
        } as RequestInit);
        if (first.status !== 202) throw new Error(`patch ${first.status}`);
        const done = await fetch(`${url}/v1/uploads/${id}?digest=sha256:${hex}`, {
          method: "PUT",
          headers: { ...auth, "content-range": `bytes ${half}-${job.data.length - 1}/${job.data.length}` },
          body: slowBody(job.data.subarray(half), job.delay),
          duplex: "half",
        } as RequestInit);
        if (done.status !== 201) throw new Error(`complete ${done.status}`);
      } else {
        const res = await fetch(`${url}/v1/blobs/sha256:${hex}`, {
          method: "PUT",
          headers: auth,
          body: slowBody(job.data, job.delay),
          duplex: "half",
        } as RequestInit);
        if (res.status !== 201) throw new Error(`put ${res.status}`);
      }
      acknowledged.add(hex);
      const t = makeTemplate(`crash-${job.i}`, "1.0.0", { blobs: [job.data] });
      const m = await fetch(`${url}/v1/templates/${t.name}/1.0.0`, {
        method: "PUT",
        headers: auth,
        body: t.manifest,
      });
      if (m.status === 201)
        manifestsAcknowledged.push({ name: t.name, version: "1.0.0", manifest: t.manifest });
    };

    const settled = Promise.allSettled(jobs.map(runJob));
    // Kill once some uploads are acknowledged and the slow ones are still streaming.
    const deadline = Date.now() + 20_000;
    while (acknowledged.size < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 150));
    const exited = new Promise((r) => server.child.once("exit", r));
    server.child.kill("SIGKILL");
    await exited;
    const results = await settled;
    const failed = results.filter((r) => r.status === "rejected").length;
    console.log(`crash: ${acknowledged.size} uploads acknowledged before SIGKILL, ${failed} cut`);
    expect(acknowledged.size).toBeGreaterThanOrEqual(4);
    expect(failed).toBeGreaterThan(0); // the kill really landed mid-upload

    server = await spawnServe(storageDir, configPath);
    const after = server.url;

    // Every blob on disk is served with bytes matching its digest.
    const stored = (await readdir(join(storageDir, "blobs", "sha256")).catch(() => [])).filter((n) =>
      /^[0-9a-f]{64}$/.test(n),
    );
    for (const hex of stored) {
      const body = Buffer.from(await (await fetch(`${after}/v1/blobs/sha256:${hex}`)).arrayBuffer());
      expect(sha256(body), `blob ${hex}`).toBe(hex);
    }
    // Every acknowledged upload is there.
    for (const hex of acknowledged) {
      expect(stored).toContain(hex);
      expect((await fetch(`${after}/v1/blobs/sha256:${hex}`, { method: "HEAD" })).status).toBe(200);
    }
    // Every manifest (acknowledged or not) names blobs that exist; acknowledged ones are served intact.
    const catalog = (await (await fetch(`${after}/v1/templates`)).json()) as {
      templates: { name: string }[];
    };
    for (const { name } of catalog.templates) {
      const manifest = JSON.parse(await (await fetch(`${after}/v1/templates/${name}/1.0.0`)).text()) as {
        artifacts: { digest: string }[];
      };
      for (const a of manifest.artifacts) {
        expect(
          (await fetch(`${after}/v1/blobs/${a.digest}`, { method: "HEAD" })).status,
          `${name} ${a.digest}`,
        ).toBe(200);
      }
    }
    for (const m of manifestsAcknowledged) {
      const served = Buffer.from(
        await (await fetch(`${after}/v1/templates/${m.name}/${m.version}`)).arrayBuffer(),
      );
      expect(served.equals(m.manifest)).toBe(true);
    }
    // Uploads cut by the kill are still there to resume (or expire at GC), with a sane offset.
    for (const id of uploadIds) {
      const res = await fetch(`${after}/v1/uploads/${id}`, { headers: auth });
      if (res.status === 200)
        expect(((await res.json()) as { offset: number }).offset).toBeLessThanOrEqual(2 * MiB);
      else expect(res.status).toBe(404); // completed before the kill
    }
    // A resumable upload survives a SIGKILL and completes from the offset the new process reports.
    const data = randomBytes(600_000);
    const open = await fetch(`${after}/v1/uploads`, { method: "POST", headers: auth });
    const { id } = (await open.json()) as { id: string };
    await fetch(`${after}/v1/uploads/${id}`, {
      method: "PATCH",
      headers: { ...auth, "content-range": "bytes 0-299999/600000" },
      body: data.subarray(0, 300_000),
    });
    server.child.kill("SIGKILL");
    await new Promise((r) => server.child.once("exit", r));
    server = await spawnServe(storageDir, configPath);
    const state = (await (await fetch(`${server.url}/v1/uploads/${id}`, { headers: auth })).json()) as {
      offset: number;
    };
    expect(state.offset).toBe(300_000);
    const done = await fetch(`${server.url}/v1/uploads/${id}?digest=sha256:${sha256(data)}`, {
      method: "PUT",
      headers: { ...auth, "content-range": "bytes 300000-599999/600000" },
      body: data.subarray(300_000),
    });
    expect(done.status).toBe(201);
  });
});
