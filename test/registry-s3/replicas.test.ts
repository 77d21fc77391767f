import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bearer, makeTemplate, pushTemplate, sha256, writeConfig } from "../helpers/registry.js";
import { type Rgw, rgwForTests } from "../helpers/rgw.js";
import { type S3Serve, spawnS3Serve } from "../helpers/s3-registry.js";

// Two stateless `templar serve` processes on one bucket of a real S3 server (Ceph RGW).
const rgw = await rgwForTests();

describe.skipIf(!rgw)("two registry processes on one S3 bucket", () => {
  let dir: string;
  let token: string;
  let tokens: Record<string, string>;
  let a: S3Serve;
  let b: S3Serve;
  let bucket: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "templar-s3-replicas-"));
    const configPath = join(dir, "registry.yaml");
    tokens = await writeConfig(configPath, {
      tokens: { push: ["push:*"], other: ["push:*"], debianPull: ["pull:debian-*"] },
      cacheTtl: "0s",
    });
    token = tokens.push!;
    bucket = await (rgw as Rgw).createBucket();
    [a, b] = await Promise.all([
      spawnS3Serve(rgw as Rgw, { bucket, configPath }),
      spawnS3Serve(rgw as Rgw, { bucket, configPath }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await rm(dir, { recursive: true, force: true });
    await rgw?.stop();
  });

  it("is ready on both", async () => {
    for (const r of [a, b]) {
      const res = await fetch(`${r.url}/readyz`);
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ storage: "s3" });
    }
  });

  it("serves at once through one what was pushed through the other", async () => {
    const t = makeTemplate("debian-13-x86_64-replica", "1.0.0", {
      blobs: [randomBytes(3 << 20), randomBytes(777)],
    });
    expect((await pushTemplate(a.url, token, t)).status).toBe(201);
    const manifest = await fetch(`${b.url}/v1/templates/${t.name}/1.0.0`);
    expect(manifest.status).toBe(200);
    expect(Buffer.from(await manifest.arrayBuffer()).equals(t.manifest)).toBe(true);
    const byRange = await fetch(`${b.url}/v1/templates/${t.name}/${encodeURIComponent("^1")}`);
    expect(byRange.headers.get("x-template-version")).toBe("1.0.0");
    const blob = t.blobs[0]!;
    const whole = await fetch(`${b.url}/v1/blobs/sha256:${sha256(blob)}`);
    expect(whole.status).toBe(200);
    expect(sha256(Buffer.from(await whole.arrayBuffer()))).toBe(sha256(blob));
    const part = await fetch(`${b.url}/v1/blobs/sha256:${sha256(blob)}`, {
      headers: { Range: "bytes=1000-2999999" },
    });
    expect(part.status).toBe(206);
    expect(Buffer.from(await part.arrayBuffer()).equals(blob.subarray(1000, 3_000_000))).toBe(true);
  });

  it("leaves exactly one winner among 50 concurrent pushes of one version over both", async () => {
    const name = "debian-13-x86_64-race";
    const candidates = Array.from({ length: 50 }, () =>
      makeTemplate(name, "2.0.0", { blobs: [randomBytes(4096)] }),
    );
    const statuses = await Promise.all(
      candidates.map((t, i) => pushTemplate(i % 2 ? a.url : b.url, token, t)),
    );
    const codes = statuses.map((r) => r.status);
    expect(codes.filter((s) => s === 201)).toHaveLength(1);
    expect(codes.filter((s) => s === 409)).toHaveLength(49);
    const winner = candidates[codes.indexOf(201)]!;
    for (const r of [a, b]) {
      const res = await fetch(`${r.url}/v1/templates/${name}/2.0.0`);
      expect(Buffer.from(await res.arrayBuffer()).equals(winner.manifest)).toBe(true);
      const blob = await fetch(`${r.url}/v1/blobs/sha256:${sha256(winner.blobs[0]!)}`);
      expect(Buffer.from(await blob.arrayBuffer()).equals(winner.blobs[0]!)).toBe(true);
    }
  });

  it("completes on one a resumable upload started on the other, with the right digest", async () => {
    const data = randomBytes(12 * 1024 * 1024 + 4321);
    const hex = sha256(data);
    const auth = bearer(token);
    const created = await fetch(`${a.url}/v1/uploads`, { method: "POST", headers: auth });
    expect(created.status).toBe(202);
    const { id } = (await created.json()) as { id: string };
    // Chunks alternate between the replicas: a big one, small ones, then the rest with the PUT.
    const cuts = [0, 9 << 20, (9 << 20) + 100_000, (9 << 20) + 150_000, 11 << 20];
    for (let i = 0; i + 1 < cuts.length; i++) {
      const [start, end] = [cuts[i]!, cuts[i + 1]!];
      const res = await fetch(`${(i % 2 ? b : a).url}/v1/uploads/${id}`, {
        method: "PATCH",
        headers: { ...auth, "Content-Range": `bytes ${start}-${end - 1}/*` },
        body: data.subarray(start, end),
      });
      expect(res.status, await res.clone().text()).toBe(202);
      expect(res.headers.get("upload-offset")).toBe(String(end));
    }
    // A stale chunk (offset already taken) is refused on either replica.
    const stale = await fetch(`${a.url}/v1/uploads/${id}`, {
      method: "PATCH",
      headers: { ...auth, "Content-Range": `bytes 0-9/*` },
      body: data.subarray(0, 10),
    });
    expect(stale.status).toBeGreaterThanOrEqual(400);
    const status = await fetch(`${a.url}/v1/uploads/${id}`, { headers: auth });
    expect(status.headers.get("upload-offset")).toBe(String(11 << 20));
    const done = await fetch(`${b.url}/v1/uploads/${id}?digest=sha256:${hex}`, {
      method: "PUT",
      headers: { ...auth, "Content-Range": `bytes ${11 << 20}-${data.length - 1}/${data.length}` },
      body: data.subarray(11 << 20),
    });
    expect(done.status, await done.clone().text()).toBe(201);
    expect(await done.json()).toEqual({ digest: `sha256:${hex}`, size: data.length });
    const got = await fetch(`${a.url}/v1/blobs/sha256:${hex}`);
    expect(sha256(Buffer.from(await got.arrayBuffer()))).toBe(hex);
    expect((await fetch(`${a.url}/v1/uploads/${id}`, { headers: auth })).status).toBe(404);
  });

  it("binds a resumable upload to its token on both replicas (the owner is in the bucket)", async () => {
    const data = randomBytes(5000);
    const created = await fetch(`${a.url}/v1/uploads`, { method: "POST", headers: bearer(token) });
    const { id } = (await created.json()) as { id: string };
    for (const r of [a, b]) {
      const theirs = await fetch(`${r.url}/v1/uploads/${id}`, {
        method: "PATCH",
        headers: { ...bearer(tokens.other), "Content-Range": "bytes 0-4999/*" },
        body: data,
      });
      expect(theirs.status).toBe(404);
      expect((await theirs.json()) as unknown).toMatchObject({ error: { code: "UPLOAD_UNKNOWN" } });
      expect((await fetch(`${r.url}/v1/uploads/${id}`, { headers: bearer(tokens.other) })).status).toBe(404);
    }
    const mine = await fetch(`${b.url}/v1/uploads/${id}?digest=sha256:${sha256(data)}`, {
      method: "PUT",
      headers: { ...bearer(token), "Content-Range": "bytes 0-4999/5000" },
      body: data,
    });
    expect(mine.status).toBe(201);
  });

  it("serves a name-scoped token only blobs its templates name, on either replica", async () => {
    const mine = makeTemplate("debian-13-x86_64-scoped", "1.0.0", { blobs: [randomBytes(900)] });
    const theirs = makeTemplate("centos-10-x86_64-scoped", "1.0.0", { blobs: [randomBytes(800)] });
    expect((await pushTemplate(a.url, token, mine)).status).toBe(201);
    expect((await pushTemplate(a.url, token, theirs)).status).toBe(201);
    for (const r of [b, a]) {
      const auth = bearer(tokens.debianPull);
      expect(
        (await fetch(`${r.url}/v1/blobs/sha256:${sha256(mine.blobs[0]!)}`, { headers: auth })).status,
      ).toBe(200);
      const denied = await fetch(`${r.url}/v1/blobs/sha256:${sha256(theirs.blobs[0]!)}`, { headers: auth });
      expect(denied.status).toBe(404);
    }
  });

  it("redirects blob downloads to a presigned URL when asked (never manifests)", async () => {
    const configPath = join(dir, "registry.yaml");
    const c = await spawnS3Serve(rgw as Rgw, { bucket, configPath, args: ["--s3-redirect"] });
    try {
      const t = makeTemplate("debian-13-x86_64-redirect", "1.0.0", { blobs: [randomBytes(100_000)] });
      expect((await pushTemplate(c.url, token, t)).status).toBe(201);
      const blobUrl = `${c.url}/v1/blobs/sha256:${sha256(t.blobs[0]!)}`;
      const redirect = await fetch(blobUrl, { redirect: "manual" });
      expect(redirect.status).toBe(307);
      const location = redirect.headers.get("location")!;
      expect(location.startsWith((rgw as Rgw).endpoint)).toBe(true);
      expect(location).toMatch(/X-Amz-Signature=/);
      const ranged = await fetch(blobUrl, { headers: { Range: "bytes=5-14" } }); // follows the redirect
      expect(ranged.status).toBe(206);
      expect(Buffer.from(await ranged.arrayBuffer()).equals(t.blobs[0]!.subarray(5, 15))).toBe(true);
      expect((await fetch(blobUrl, { method: "HEAD", redirect: "manual" })).status).toBe(200);
      const manifest = await fetch(`${c.url}/v1/templates/${t.name}/1.0.0`, { redirect: "manual" });
      expect(manifest.status).toBe(200);
      expect(Buffer.from(await manifest.arrayBuffer()).equals(t.manifest)).toBe(true);
    } finally {
      await c.stop();
    }
  });
});
