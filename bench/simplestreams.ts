/**
 * Benchmark: the simplestreams `images.json` (and lxc-download's index) with many versions.
 *
 *   npm run build && node dist/bench/simplestreams.js [--versions 200] [--builds 200] [--reps 200]
 *
 * Pushes --versions versions of one template (each with tar.xz and both host metadata
 * tarballs), every one listed (--builds, the registry's compat.hostImageBuilds), then times:
 * the first GET after a push (the document rebuilt for the new state), and --reps GETs of an
 * unchanged state (the per-state cache), against nginx serving the same bytes as a static file
 * when nginx is installed. Target: images.json under 100 ms to serve.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { stringify } from "yaml";
import { newToken } from "../registry/auth.js";
import { startRegistry } from "../registry/server.js";
import { LocalDriver } from "../registry/storage/local-driver.js";
import { startNginx } from "./nginx.js";

const { values } = parseArgs({
  options: {
    versions: { type: "string", default: "200" },
    builds: { type: "string", default: "200" },
    reps: { type: "string", default: "200" },
  },
});
const VERSIONS = Number(values.versions);
const REPS = Number(values.reps);

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

function manifestFor(version: string, created: Date) {
  const rootfs = randomBytes(512);
  const lxc = randomBytes(256);
  const incus = randomBytes(256);
  const manifest = {
    schemaVersion: 1,
    name: "debian-13-x86_64",
    version,
    distro: "debian",
    release: "13",
    arch: "x86_64",
    created: created.toISOString().replace(/\.\d{3}Z$/, "Z"),
    source: { method: "debootstrap", suite: "trixie" },
    rootfs: { tarSha256: sha(rootfs), tarSize: rootfs.length, entries: 1 },
    artifacts: [
      { format: "tar.xz", digest: `sha256:${sha(rootfs)}`, size: rootfs.length },
      { format: "lxc-meta.tar.xz", digest: `sha256:${sha(lxc)}`, size: lxc.length },
      {
        format: "incus-meta.tar.xz",
        digest: `sha256:${sha(incus)}`,
        size: incus.length,
        combinedSha256: sha(Buffer.concat([incus, rootfs])),
      },
    ],
  };
  return { blobs: [rootfs, lxc, incus], manifest: Buffer.from(JSON.stringify(manifest)) };
}

async function timeGet(url: string): Promise<{ ms: number; bytes: number }> {
  const start = performance.now();
  const res = await fetch(url);
  const body = await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status}`);
  return { ms: performance.now() - start, bytes: body.byteLength };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}
function p95(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * 0.95))]!;
}

async function loop(url: string): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < REPS; i++) times.push((await timeGet(url)).ms);
  return times;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "templar-bench-ss-"));
  const token = newToken();
  const configPath = join(dir, "registry.yaml");
  await writeFile(
    configPath,
    stringify({
      anonymousPull: true,
      gc: { interval: 0 },
      tokens: [{ id: token.id, sha256: token.sha256, scopes: ["push:*"] }],
      compat: { hostImageBuilds: Number(values.builds) },
    }),
  );
  const registry = await startRegistry({
    storage: new LocalDriver(join(dir, "data")),
    configPath,
    host: "127.0.0.1",
    port: 0,
    log: () => {},
  });
  const auth = { authorization: `Bearer ${token.token}` };
  const push = async (version: string, created: Date) => {
    const t = manifestFor(version, created);
    for (const blob of t.blobs) {
      const r = await fetch(`${registry.url}/v1/blobs/sha256:${sha(blob)}`, {
        method: "PUT",
        headers: auth,
        body: blob,
      });
      if (r.status >= 300) throw new Error(`blob: ${r.status}`);
    }
    const r = await fetch(`${registry.url}/v1/templates/debian-13-x86_64/${version}`, {
      method: "PUT",
      headers: auth,
      body: t.manifest,
    });
    if (r.status !== 201) throw new Error(`manifest: ${r.status} ${await r.text()}`);
  };
  try {
    const base = Date.parse("2026-01-01T00:00:00Z");
    const pushStart = performance.now();
    for (let i = 0; i < VERSIONS; i++) await push(`13.${i}.0`, new Date(base + i * 3_600_000));
    console.log(`pushed ${VERSIONS} versions in ${((performance.now() - pushStart) / 1000).toFixed(1)} s`);

    const url = `${registry.url}/streams/v1/images.json`;
    const cold = await timeGet(url);
    console.log(
      `images.json: ${cold.bytes} bytes; first GET after the pushes (rebuilt): ${cold.ms.toFixed(1)} ms`,
    );
    const warm = await loop(url);
    console.log(
      `images.json, unchanged state, ${REPS} GETs: median ${median(warm).toFixed(2)} ms, p95 ${p95(warm).toFixed(2)} ms`,
    );
    await push(`13.${VERSIONS}.0`, new Date(base + VERSIONS * 3_600_000));
    const again = await timeGet(url);
    console.log(`first GET after one more push (rebuilt): ${again.ms.toFixed(1)} ms`);
    const index = await loop(`${registry.url}/meta/1.0/index-system`);
    console.log(`lxc-download index-system, ${REPS} GETs: median ${median(index).toFixed(2)} ms`);

    const worst = Math.max(cold.ms, again.ms, p95(warm));
    console.log(
      `target: images.json under 100 ms to serve: worst ${worst.toFixed(1)} ms ${worst < 100 ? "OK" : "MISSED"}`,
    );

    // Reference: nginx serving the same bytes from a file.
    try {
      const root = join(dir, "static");
      await mkdir(join(root, "streams/v1"), { recursive: true });
      await writeFile(
        join(root, "streams/v1/images.json"),
        Buffer.from(await (await fetch(url)).arrayBuffer()),
      );
      const nginx = await startNginx(join(dir, "nginx"), `root ${root};`);
      try {
        const ref = await loop(`${nginx.url}/streams/v1/images.json`);
        console.log(
          `nginx static file, ${REPS} GETs: median ${median(ref).toFixed(2)} ms, p95 ${p95(ref).toFixed(2)} ms; templar/nginx (medians) ${(median(warm) / median(ref)).toFixed(2)}x`,
        );
      } finally {
        await nginx.stop();
      }
    } catch (err) {
      console.log(`nginx reference skipped: ${(err as Error).message}`);
    }
  } finally {
    await registry.close();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
