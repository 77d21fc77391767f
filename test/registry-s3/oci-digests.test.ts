import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  makeTemplate,
  pushTemplate,
  type ServeProcess,
  spawnServe,
  writeConfig,
} from "../helpers/registry.js";
import { type Rgw, rgwForTests } from "../helpers/rgw.js";
import { type S3Serve, spawnS3Serve } from "../helpers/s3-registry.js";

// The OCI documents are derived, not stored: two S3 replicas and a local-storage process serve
// byte-identical index, manifests and config for the same pushed template.
const rgw = await rgwForTests();

describe.skipIf(!rgw)("OCI digests across registry processes and storages", () => {
  let dir: string;
  let token: string;
  let s3a: S3Serve;
  let s3b: S3Serve;
  let local: ServeProcess;
  const t = makeTemplate("debian-13-x86_64-ocidigest", "13.2.0", {
    blobs: [randomBytes(70_000), randomBytes(50_000)],
  });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "templar-oci-digests-"));
    const configPath = join(dir, "registry.yaml");
    token = (await writeConfig(configPath, { tokens: { push: ["push:*"] } })).push!;
    const bucket = await (rgw as Rgw).createBucket();
    [s3a, s3b, local] = await Promise.all([
      spawnS3Serve(rgw as Rgw, { bucket, configPath }),
      spawnS3Serve(rgw as Rgw, { bucket, configPath }),
      spawnServe(join(dir, "data"), configPath),
    ]);
    expect((await pushTemplate(s3a.url, token, t)).status).toBe(201);
    expect((await pushTemplate(local.url, token, t)).status).toBe(201);
  }, 120_000);
  afterAll(async () => {
    await Promise.all([s3a?.stop(), s3b?.stop(), local?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
    await rgw?.stop();
  });

  async function documents(url: string): Promise<Record<string, string>> {
    const base = `${url}/v2/${t.name}`;
    const out: Record<string, string> = {};
    const get = async (path: string, key: string) => {
      const res = await fetch(`${base}/${path}`);
      expect(res.status, `${url} ${path}`).toBe(200);
      const bytes = Buffer.from(await res.arrayBuffer());
      out[key] = bytes.toString("base64");
      return JSON.parse(bytes.toString("utf8"));
    };
    const index = await get("manifests/latest", "index");
    for (const [i, m] of (index.manifests as { digest: string }[]).entries()) {
      const manifest = await get(`manifests/${m.digest}`, `manifest${i}`);
      await get(`blobs/${manifest.config.digest}`, `config${i}`);
      const layer = await fetch(`${base}/blobs/${manifest.layers[0].digest}`, { method: "HEAD" });
      expect(layer.status).toBe(200);
      out[`layer${i}`] = manifest.layers[0].digest;
    }
    return out;
  }

  it("serves the same bytes from every process", async () => {
    const [a, b, c] = await Promise.all([documents(s3a.url), documents(s3b.url), documents(local.url)]);
    expect(Object.keys(a)).toEqual([
      "index",
      "manifest0",
      "config0",
      "layer0",
      "manifest1",
      "config1",
      "layer1",
    ]);
    expect(b).toEqual(a);
    expect(c).toEqual(a);
    const tags = await (await fetch(`${s3b.url}/v2/${t.name}/tags/list`)).json();
    expect(tags).toEqual({ name: t.name, tags: ["13.2.0", "latest"] });
  });
});
