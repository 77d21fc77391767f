import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRegistry } from "../../registry/server.js";
import { LocalDriver } from "../../registry/storage/local-driver.js";
import { CLI, spawnServe } from "../helpers/registry.js";
import { httpsGet, issueServerCert, makeTestCa, type TestCa } from "../helpers/tls.js";

const run = promisify(execFile);
let dir: string;
let ca: TestCa;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "templar-tls-"));
  ca = await makeTestCa(dir);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("templar serve over TLS", () => {
  it("serves HTTPS with the given pair and takes a renewed certificate without a restart", async () => {
    const log: Record<string, unknown>[] = [];
    const registry = await startRegistry({
      storage: new LocalDriver(join(dir, "data")),
      configPath: null,
      host: "127.0.0.1",
      port: 0,
      tls: { cert: ca.cert, key: ca.key },
      tlsPollMs: 50,
      log: (e) => log.push(e),
    });
    try {
      expect(registry.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const first = await httpsGet(`${registry.url}/healthz`, ca.caCert);
      expect(first.status).toBe(200);

      const renewed = await issueServerCert(ca);
      expect(renewed).not.toBe(first.fingerprint);
      const deadline = Date.now() + 10_000;
      let seen = first.fingerprint;
      while (seen !== renewed && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        seen = (await httpsGet(`${registry.url}/healthz`, ca.caCert)).fingerprint;
      }
      expect(seen).toBe(renewed);
      expect(log.some((e) => e.event === "tls-reloaded")).toBe(true);
    } finally {
      await registry.close();
    }
  });

  it("a key that does not match the certificate is refused at start, naming both files", async () => {
    const other = { cert: join(dir, "other.crt"), key: join(dir, "other.key") };
    await issueServerCert(ca, other);
    const started = startRegistry({
      storage: new LocalDriver(join(dir, "data")),
      configPath: null,
      host: "127.0.0.1",
      port: 0,
      tls: { cert: ca.cert, key: other.key },
      log: () => {},
    });
    await expect(started).rejects.toThrow(/TLS certificate .*server\.crt and key .*other\.key/);
  });

  it("the CLI: a lone --tls-cert is a usage error; tls: in the config file is relative to it", async () => {
    const lone = await run(process.execPath, [
      CLI,
      "serve",
      "--tls-cert",
      ca.cert,
      "--storage",
      join(dir, "d2"),
    ]).catch((e: { code: number; stderr: string }) => e);
    expect((lone as { code: number }).code).toBe(2);
    expect((lone as { stderr: string }).stderr).toContain("--tls-cert and --tls-key go together");

    const config = join(dir, "registry.yaml");
    await writeFile(config, "tls:\n  cert: server.crt\n  key: server.key\n");
    const serve = await spawnServe(join(dir, "d3"), config);
    try {
      expect(serve.url).toMatch(/^https:/);
      expect((await httpsGet(`${serve.url}/healthz`, ca.caCert)).status).toBe(200);
    } finally {
      await serve.stop();
    }
  });
});
