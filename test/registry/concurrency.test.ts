import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  makeTemplate,
  pushTemplate,
  type ServeProcess,
  sha256,
  spawnServe,
  writeConfig,
} from "../helpers/registry.js";

/**
 * Concurrent pushes of one version leave exactly one winner (docs/storage.md), here through two
 * separate `templar serve` processes sharing one storage directory.
 */
describe("50 concurrent pushes of one version through two registry processes", () => {
  let dir: string;
  let servers: ServeProcess[] = [];
  let token: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "templar-race-"));
    const configPath = join(dir, "registry.yaml");
    token = (await writeConfig(configPath, { tokens: { push: ["push:*"] } })).push!;
    const storageDir = join(dir, "data");
    servers = await Promise.all([spawnServe(storageDir, configPath), spawnServe(storageDir, configPath)]);
  });
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await rm(dir, { recursive: true, force: true });
  });

  it("exactly one 201, every other push 409, and both processes serve the winner, complete", async () => {
    const name = "debian-13-x86_64-race";
    const pushes = Array.from({ length: 50 }, (_, i) =>
      makeTemplate(name, "1.0.0", { blobs: [Buffer.from(`content of push ${i} `.repeat(1000 + i))] }),
    );
    const statuses = await Promise.all(
      pushes.map(async (t, i) => {
        const res = await pushTemplate(servers[i % 2]!.url, token, t);
        await res.arrayBuffer();
        return res.status;
      }),
    );
    expect(statuses.filter((s) => s === 201)).toHaveLength(1);
    expect(statuses.filter((s) => s === 409)).toHaveLength(49);
    const winner = pushes[statuses.indexOf(201)]!;

    for (const server of servers) {
      for (const ref of ["1.0.0", "latest", encodeURIComponent("^1")]) {
        const res = await fetch(`${server.url}/v1/templates/${name}/${ref}`);
        expect(res.status).toBe(200);
        expect(Buffer.from(await res.arrayBuffer()).equals(winner.manifest)).toBe(true);
      }
      const manifest = JSON.parse(winner.manifest.toString()) as {
        artifacts: { digest: string; size: number }[];
      };
      for (const artifact of manifest.artifacts) {
        const blob = Buffer.from(
          await (await fetch(`${server.url}/v1/blobs/${artifact.digest}`)).arrayBuffer(),
        );
        expect(blob.length).toBe(artifact.size);
        expect(`sha256:${sha256(blob)}`).toBe(artifact.digest);
      }
      const listing = (await (await fetch(`${server.url}/v1/templates/${name}`)).json()) as {
        versions: { version: string }[];
      };
      expect(listing.versions.map((v) => v.version)).toEqual(["1.0.0"]);
    }
    // Pushing the winner's manifest again is a no-op on either process.
    for (const server of servers) expect((await pushTemplate(server.url, token, winner)).status).toBe(200);
  });
});
