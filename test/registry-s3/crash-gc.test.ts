import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { ListMultipartUploadsCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { S3Driver } from "../../registry/storage/s3-driver.js";
import { pinnedBlobs } from "../../registry/store/gc-protocol.js";
import { bearer, CLI, makeTemplate, pushTemplate, sha256, writeConfig } from "../helpers/registry.js";
import { type Rgw, rgwForTests } from "../helpers/rgw.js";
import { type S3Serve, spawnS3Serve } from "../helpers/s3-registry.js";
import { storeOf } from "../helpers/store.js";

const run = promisify(execFile);
const rgw = await rgwForTests();

/**
 * A request body that sends `data` 1 MiB at a time and then stalls before its last MiB: the
 * upload stays in flight (multipart upload begun, digest not yet checked) until the process dies.
 */
function stalling(data: Buffer): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    async pull(controller) {
      if (at >= data.length - (1 << 20)) return new Promise<void>(() => {}); // never more
      await new Promise((r) => setTimeout(r, 20));
      controller.enqueue(data.subarray(at, at + (1 << 20)));
      at += 1 << 20;
    },
  });
}

describe.skipIf(!rgw)("a registry process killed during uploads (S3)", () => {
  let dir: string;
  let configPath: string;
  let token: string;
  let bucket: string;
  let storage: S3Driver;
  /** Writes a dead process left unfinished: invisible to listings, but stored. */
  const incompleteMultipartUploads = async () =>
    ((await storage.client.send(new ListMultipartUploadsCommand({ Bucket: storage.bucket }))).Uploads ?? [])
      .length;
  let victim: S3Serve;
  let survivor: S3Serve;
  const kept = makeTemplate("debian-13-x86_64-kept", "1.0.0", { blobs: [randomBytes(6 << 20)] });
  const orphans = [randomBytes(50_000), randomBytes(9 << 20)];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "templar-s3-crash-"));
    configPath = join(dir, "registry.yaml");
    ({ push: token } = (await writeConfig(configPath, { tokens: { push: ["push:*"] } })) as { push: string });
    bucket = await (rgw as Rgw).createBucket();
    storage = new S3Driver((rgw as Rgw).options(bucket));
    [victim, survivor] = await Promise.all([
      spawnS3Serve(rgw as Rgw, { bucket, configPath }),
      spawnS3Serve(rgw as Rgw, { bucket, configPath }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([victim?.kill(), survivor?.stop()]);
    storage?.client.destroy();
    await rm(dir, { recursive: true, force: true });
    await rgw?.stop();
  });

  it("leaves no wrong object and no manifest naming a missing blob; GC removes orphans and unfinished uploads", async () => {
    const auth = bearer(token);
    // Finished before the crash: a template (kept) and two blobs no manifest names (orphans).
    expect((await pushTemplate(victim.url, token, kept)).status).toBe(201);
    for (const blob of orphans) {
      const res = await fetch(`${victim.url}/v1/blobs/sha256:${sha256(blob)}`, {
        method: "PUT",
        headers: auth,
        body: blob,
      });
      expect(res.status).toBe(201);
    }

    // In flight at the crash: 12 monolithic uploads stalled before their end (half of them with a
    // wrong digest) and 8 resumable uploads stalled in the middle of a chunk; plus manifests
    // racing their blobs.
    const inflight: Promise<unknown>[] = [];
    const settled = (p: Promise<unknown>) => inflight.push(p.catch(() => undefined));
    for (let i = 0; i < 12; i++) {
      const data = randomBytes(12 << 20);
      const digest = i % 2 ? sha256(randomBytes(8)) : sha256(data);
      settled(
        fetch(`${victim.url}/v1/blobs/sha256:${digest}`, {
          method: "PUT",
          headers: auth,
          body: stalling(data),
          duplex: "half",
        } as RequestInit),
      );
    }
    const uploadIds: string[] = [];
    for (let i = 0; i < 8; i++) {
      // Once more if a kept-alive connection was closed under us (a loaded machine); nothing is
      // created then, and the counts below allow for it anyway.
      const post = () => fetch(`${victim.url}/v1/uploads`, { method: "POST", headers: auth });
      const created = await post().catch(post);
      const { id } = (await created.json()) as { id: string };
      uploadIds.push(id);
      const data = randomBytes(12 << 20);
      settled(
        fetch(`${victim.url}/v1/uploads/${id}`, {
          method: "PATCH",
          headers: { ...auth, "Content-Range": `bytes 0-${data.length - 1}/*` },
          body: stalling(data),
          duplex: "half",
        } as RequestInit),
      );
    }
    for (let i = 0; i < 5; i++) {
      settled(
        pushTemplate(
          victim.url,
          token,
          makeTemplate(`debian-13-x86_64-crash${i}`, "1.0.0", { blobs: [randomBytes(3 << 20)] }),
        ),
      );
    }
    // Kill once the stalled uploads have begun their multipart uploads (seconds on a loaded machine).
    for (let waited = 0; waited < 60_000; waited += 200) {
      if ((await incompleteMultipartUploads()) >= 12) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(victim.child.exitCode, `the victim died on its own: ${victim.stderr()}`).toBeNull();
    await victim.kill();
    await Promise.all(inflight);

    // Every visible blob has the bytes its name says; every manifest's blobs exist.
    const blobs = new Set<string>();
    for await (const blob of storeOf(storage).blobs.list()) {
      const stream = await storeOf(storage).blobs.read(blob.hex);
      const parts: Buffer[] = [];
      for await (const chunk of stream!) parts.push(chunk as Buffer);
      expect(sha256(Buffer.concat(parts)), `blob ${blob.hex}`).toBe(blob.hex);
      blobs.add(blob.hex);
    }
    const named = new Set<string>();
    for await (const o of storage.list("templates/")) {
      if (!o.key.endsWith(".json")) continue;
      const manifest = JSON.parse((await storage.get(o.key))!.toString()) as {
        artifacts: { digest: string }[];
      };
      for (const a of manifest.artifacts) {
        const hex = a.digest.slice(7);
        named.add(hex);
        expect(blobs.has(hex), `${o.key} names ${a.digest}`).toBe(true);
      }
    }
    // The survivor serves the kept template whole.
    const got = await fetch(`${survivor.url}/v1/blobs/sha256:${sha256(kept.blobs[0]!)}`);
    expect(sha256(Buffer.from(await got.arrayBuffer()))).toBe(sha256(kept.blobs[0]!));

    const count = async () => {
      const partial = await incompleteMultipartUploads();
      let uploads = 0;
      for await (const _ of storeOf(storage).uploads.list()) uploads++;
      // A push killed between its pin and its manifest leaves a pin that keeps its blobs for the
      // pin's lifetime (a publisher that is only slow must not lose them): those are not orphans yet.
      const pinned = await pinnedBlobs(storage);
      let orphanBlobs = 0;
      let pinnedOrphans = 0;
      for await (const b of storeOf(storage).blobs.list()) {
        if (named.has(b.hex)) continue;
        if (pinned.has(b.hex)) pinnedOrphans++;
        else orphanBlobs++;
      }
      return { partial, uploads, orphanBlobs, pinnedOrphans };
    };
    const before = await count();
    console.log("before GC", before);
    expect(before.partial).toBeGreaterThan(0); // multipart uploads the dead process never finished
    expect(before.uploads).toBeGreaterThanOrEqual(uploadIds.length);
    expect(before.orphanBlobs + before.pinnedOrphans).toBeGreaterThanOrEqual(orphans.length);

    const gc = await run(
      process.execPath,
      [
        CLI,
        "gc",
        "--storage",
        `s3://${bucket}`,
        "--grace",
        "0s",
        "--upload-expiry",
        "0s",
        "--config",
        configPath,
        "--json",
      ],
      { env: { ...process.env, ...(rgw as Rgw).env } },
    );
    const report = JSON.parse(gc.stdout.trim().split("\n").pop()!) as Record<string, number>;
    expect(report.partialWritesAborted).toBe(before.partial);
    expect(report.uploadsExpired).toBe(before.uploads);
    expect(report.deleted).toBe(before.orphanBlobs);

    const after = await count();
    console.log("after GC", after);
    expect(after).toEqual({ partial: 0, uploads: 0, orphanBlobs: 0, pinnedOrphans: before.pinnedOrphans });
    for (const hex of named) expect(await storeOf(storage).blobs.stat(hex), hex).not.toBeNull();
    const again = await fetch(`${survivor.url}/v1/templates/${kept.name}/1.0.0`);
    expect(Buffer.from(await again.arrayBuffer()).equals(kept.manifest)).toBe(true);
  });
});
