import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hostImage } from "../helpers/host-image.js";
import { bearer, pushTemplate, writeConfig } from "../helpers/registry.js";
import { type Rgw, rgwForTests } from "../helpers/rgw.js";
import { type S3Serve, spawnS3Serve } from "../helpers/s3-registry.js";

// LXC's index and the simplestreams documents from two `templar serve` processes on one bucket
// of a real S3 server (Ceph RGW): the same bytes from both, and pushes and deletes through one
// seen by the other.
const rgw = await rgwForTests();
const DOCS = ["/streams/v1/images.json", "/streams/v1/index.json", "/meta/1.0/index-system"];

describe.skipIf(!rgw)("host image documents on two S3 replicas", () => {
  let dir: string;
  let token: string;
  let a: S3Serve;
  let b: S3Serve;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "templar-s3-images-"));
    const configPath = join(dir, "registry.yaml");
    const tokens = await writeConfig(configPath, {
      tokens: { push: ["push:*", "delete:*"] },
      cacheTtl: "0s",
    });
    token = tokens.push!;
    const bucket = await (rgw as Rgw).createBucket();
    [a, b] = await Promise.all([
      spawnS3Serve(rgw as Rgw, { bucket, configPath }),
      spawnS3Serve(rgw as Rgw, { bucket, configPath }),
    ]);
  }, 120_000);
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
    await rgw?.stop();
  });

  async function docs(url: string): Promise<Buffer[]> {
    return Promise.all(DOCS.map(async (p) => Buffer.from(await (await fetch(`${url}${p}`)).arrayBuffer())));
  }

  it("serve byte-identical documents; a push through one and a delete through the other show on both", async () => {
    for (const [v, at] of [
      ["13.1.0", "2026-11-25T10:00:00Z"],
      ["13.2.0", "2026-11-25T10:00:20Z"],
    ] as const) {
      expect((await pushTemplate(a.url, token, hostImage("debian-13-x86_64", v, at))).status).toBe(201);
    }
    const fromA = await docs(a.url);
    const fromB = await docs(b.url);
    for (const [i, p] of DOCS.entries()) expect(fromA[i]!.equals(fromB[i]!), p).toBe(true);
    const images = JSON.parse(fromA[0]!.toString());
    expect(Object.keys(images.products["debian:13:amd64:default"].versions)).toEqual([
      "20261125_1000",
      "20261125_1001",
    ]);

    expect(
      (await pushTemplate(b.url, token, hostImage("debian-13-x86_64", "13.3.0", "2026-11-26T00:00:00Z")))
        .status,
    ).toBe(201);
    expect((await docs(a.url))[2]!.toString()).toContain(";20261126_0000;");
    const del = await fetch(`${a.url}/v1/templates/debian-13-x86_64/13.3.0`, {
      method: "DELETE",
      headers: bearer(token),
    });
    expect(del.status).toBeLessThan(300);
    const afterA = await docs(a.url);
    const afterB = await docs(b.url);
    expect(afterB[2]!.toString()).not.toContain("20261126_0000");
    for (const [i, p] of DOCS.entries()) expect(afterA[i]!.equals(afterB[i]!), p).toBe(true);
    // Every file the documents name is there, on both.
    const named = Object.values(
      JSON.parse(afterB[0]!.toString()).products["debian:13:amd64:default"].versions as Record<
        string,
        { items: Record<string, { path: string }> }
      >,
    ).flatMap((v) => Object.values(v.items).map((item) => `/${item.path}`));
    for (const path of named) {
      for (const url of [a.url, b.url]) expect((await fetch(`${url}${path}`)).status, path).toBe(200);
    }
  }, 120_000);
});
