import { type ChildProcess, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { stringify } from "yaml";
import { newToken } from "../../registry/auth.js";
import { type RunningRegistry, startRegistry } from "../../registry/server.js";
import { LocalDriver } from "../../registry/storage/local-driver.js";
import type { Store } from "../../registry/store/store.js";

export const CLI = resolve(import.meta.dirname, "../../dist/cli/templar.js");

export interface TestConfig {
  anonymousPull?: boolean;
  /** scope lists; a token is made for each */
  tokens?: Record<string, string[]>;
  gc?: Record<string, unknown>;
  cacheTtl?: string;
  /** Any other config sections, written last. */
  more?: Record<string, unknown>;
}

export interface TestRegistry {
  url: string;
  dir: string;
  storageDir: string;
  configPath: string;
  storage: LocalDriver;
  /** The running registry's store (its caches are the ones requests use). */
  store: Store;
  tokens: Record<string, string>;
  logs: Record<string, unknown>[];
  registry: RunningRegistry;
  close(): Promise<void>;
}

/** Writes a config file with fresh tokens; returns the plain tokens by label. */
export async function writeConfig(path: string, config: TestConfig): Promise<Record<string, string>> {
  const tokens: Record<string, string> = {};
  const entries = Object.entries(config.tokens ?? {}).map(([label, scopes]) => {
    const t = newToken();
    tokens[label] = t.token;
    return { id: t.id, sha256: t.sha256, scopes };
  });
  const doc: Record<string, unknown> = { anonymousPull: config.anonymousPull ?? true, tokens: entries };
  if (config.gc) doc.gc = config.gc;
  if (config.cacheTtl) doc.cacheTtl = config.cacheTtl;
  Object.assign(doc, config.more);
  await writeFile(path, stringify(doc));
  return tokens;
}

/**
 * An in-process registry on a fresh temp directory, listening on 127.0.0.1 with an ephemeral port.
 * `prepare` may write files next to the config (keys) and return config sections naming them.
 */
export async function startTestRegistry(
  config: TestConfig = {},
  prepare?: (dir: string) => Promise<Record<string, unknown>>,
): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), "templar-registry-"));
  const storageDir = join(dir, "data");
  const configPath = join(dir, "registry.yaml");
  const more = { ...config.more, ...(prepare ? await prepare(dir) : {}) };
  const tokens = await writeConfig(configPath, { tokens: { push: ["push:*"] }, ...config, more });
  const storage = new LocalDriver(storageDir);
  await storage.check();
  const logs: Record<string, unknown>[] = [];
  const registry = await startRegistry({
    storage,
    configPath,
    host: "127.0.0.1",
    port: 0,
    log: (e) => logs.push(e),
  });
  return {
    url: registry.url,
    dir,
    storageDir,
    configPath,
    storage,
    store: registry.deps.store,
    tokens,
    logs,
    registry,
    async close() {
      await registry.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface ServeProcess {
  url: string;
  child: ChildProcess;
  stdout: string[];
  stop(): Promise<void>;
}

/** Runs `templar serve` (the built CLI) as its own process; resolves once it listens. */
export async function spawnServe(storageDir: string, configPath: string): Promise<ServeProcess> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run 'npm run build' first (npm test does)`);
  const child = spawn(
    process.execPath,
    [CLI, "serve", "--storage", storageDir, "--listen", "127.0.0.1:0", "--config", configPath],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const stdout: string[] = [];
  let stderr = "";
  child.stderr!.on("data", (d) => {
    stderr += d;
  });
  const url = await new Promise<string>((done, fail) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on("line", (line) => {
      stdout.push(line);
      try {
        const entry = JSON.parse(line) as { event?: string; url?: string };
        if (entry.event === "listening" && entry.url) done(entry.url);
      } catch {
        // not JSON: ignore
      }
    });
    child.once("exit", (code) => fail(new Error(`templar serve exited with ${code}: ${stderr}`)));
    setTimeout(() => fail(new Error(`templar serve did not start: ${stderr}`)), 15_000).unref();
  });
  return {
    url,
    child,
    stdout,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    },
  };
}

export function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

export interface TemplateFixture {
  name: string;
  version: string;
  blobs: Buffer[];
  manifest: Buffer;
}

/** A valid manifest naming `blobs` as its artifacts (random content unless given). */
export function makeTemplate(
  name: string,
  version: string,
  options: { blobs?: Buffer[]; distro?: string; arch?: string; extra?: Record<string, unknown> } = {},
): TemplateFixture {
  const blobs = options.blobs ?? [randomBytes(2048)];
  const formats = ["tar.zst", "tar.gz", "tar.xz"] as const;
  const manifest = {
    schemaVersion: 1,
    name,
    version,
    distro: options.distro ?? "debian",
    release: "13",
    arch: options.arch ?? "x86_64",
    created: "2026-11-25T00:00:00Z",
    rootfs: { tarSha256: sha256(blobs[0]!), tarSize: blobs[0]!.length, entries: 1 },
    artifacts: blobs.map((b, i) => ({
      format: formats[i % 3],
      digest: `sha256:${sha256(b)}`,
      size: b.length,
    })),
    ...options.extra,
  };
  return { name, version, blobs, manifest: Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`) };
}

export function bearer(token: string | undefined): Record<string, string> {
  return token ? { authorization: `Bearer ${token}` } : {};
}

/** Uploads the blobs (monolithic PUT) and the manifest; returns the manifest PUT's response. */
export async function pushTemplate(url: string, token: string, t: TemplateFixture): Promise<Response> {
  for (const blob of t.blobs) {
    const res = await fetch(`${url}/v1/blobs/sha256:${sha256(blob)}`, {
      method: "PUT",
      headers: bearer(token),
      body: blob,
    });
    if (res.status !== 201 && res.status !== 200)
      throw new Error(`blob upload: ${res.status} ${await res.text()}`);
  }
  return fetch(`${url}/v1/templates/${t.name}/${t.version}`, {
    method: "PUT",
    headers: bearer(token),
    body: t.manifest,
  });
}

export async function errorOf(res: Response): Promise<{ status: number; code: string; message: string }> {
  const body = (await res.json()) as { error: { code: string; message: string } };
  return { status: res.status, code: body.error.code, message: body.error.message };
}
