import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sha256, writeConfig } from "../helpers/registry.js";
import { closedPort, type Rgw, rgwForTests } from "../helpers/rgw.js";
import { spawnS3Serve } from "../helpers/s3-registry.js";

const rgw = await rgwForTests();

describe.skipIf(!rgw)("a registry whose S3 storage is unusable", () => {
  let dir: string;
  let configPath: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "templar-s3-unready-"));
    configPath = join(dir, "registry.yaml");
    await writeConfig(configPath, { tokens: { push: ["push:*"] } });
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
    await rgw?.stop();
  });

  const cases: [string, () => Promise<{ bucket?: string; env?: Record<string, string> }>, RegExp][] = [
    [
      "a wrong secret",
      async () => ({ env: { AWS_SECRET_ACCESS_KEY: "0".repeat(40) } }),
      /secret access key is wrong/,
    ],
    [
      "an unreachable endpoint",
      async () => ({ env: { TEMPLAR_S3_ENDPOINT: `http://127.0.0.1:${await closedPort()}` } }),
      /endpoint unreachable \(ECONNREFUSED\)/,
    ],
    [
      "a missing bucket",
      async () => ({ bucket: "no-such-bucket" }),
      /bucket 'no-such-bucket' does not exist/,
    ],
  ];

  for (const [what, setup, message] of cases) {
    it(`says so once at start for ${what}, answers /readyz 503 and serves no data`, async () => {
      const { bucket, env } = await setup();
      const serve = await spawnS3Serve(rgw as Rgw, {
        bucket: bucket ?? (rgw as Rgw).bucket,
        configPath,
        env,
      });
      try {
        const unready = serve.logs.filter((l) => l.event === "storage-unready");
        expect(unready).toHaveLength(1);
        expect(String(unready[0]!.error)).toMatch(message);
        expect(JSON.stringify(serve.logs)).not.toContain((rgw as Rgw).secretAccessKey);
        const ready = await fetch(`${serve.url}/readyz`);
        expect(ready.status).toBe(503);
        expect(((await ready.json()) as { error: { message: string } }).error.message).toMatch(message);
        expect((await fetch(`${serve.url}/healthz`)).status).toBe(200);
        for (const path of [
          "/v1/templates",
          "/v1/templates/debian-13-x86_64/latest",
          `/v1/blobs/sha256:${sha256(Buffer.from("x"))}`,
        ]) {
          const res = await fetch(`${serve.url}${path}`);
          expect(res.status, path).toBeGreaterThanOrEqual(500);
          expect(await res.json(), path).toHaveProperty("error");
        }
        expect(serve.stderr()).not.toMatch(/\n\s+at /); // no stack trace
      } finally {
        await serve.stop();
      }
    });
  }
});
