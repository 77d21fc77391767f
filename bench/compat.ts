/**
 * Benchmark: the host-compatibility routes against their reference tools, in one run.
 *
 *   npm run build && node dist/bench/compat.js [--mib 256] [--reps 3] [--templates 500]
 *
 * 1. The registry's md5+sha512 of a blob for aplinfo.dat (one pass, also re-checking sha256)
 *    vs `md5sum` + `sha512sum` over the same file.
 * 2. `wget -N` of /precreated/<name>.tar.gz vs `wget` of the same blob from /v1/blobs/ (the
 *    compat route's overhead: version choice + streaming), and vs nginx when installed.
 * 3. /aplinfo.dat for `--templates` templates (sums cached) and its signature, per request.
 * Medians of --reps runs; ratios printed (>1 means templar is faster for 1, slower for 2).
 */
import { execFile, execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, writeFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs, promisify } from "node:util";
import { stringify } from "yaml";
import { generateSigningKey } from "../common/signing/keys.js";
import { startRegistry } from "../registry/server.js";
import { LocalDriver } from "../registry/storage/local-driver.js";
import { layout as keys } from "../registry/store/layout.js";
import { Store } from "../registry/store/store.js";

const { values } = parseArgs({
  options: {
    mib: { type: "string", default: "256" },
    reps: { type: "string", default: "3" },
    templates: { type: "string", default: "500" },
  },
});
const MIB = Number(values.mib);
const REPS = Number(values.reps);
const TEMPLATES = Number(values.templates);

// wget runs asynchronously: the registry serving it lives in this process.
const run = promisify(execFile);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function time(fn: () => Promise<unknown> | unknown): Promise<number> {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
}

async function main() {
  const dir = await mkdtemp(join(tmpdir(), "templar-bench-compat-"));
  try {
    const storage = new LocalDriver(join(dir, "data"));
    await storage.check();
    const store = new Store(storage, { cacheTtlMs: 2000 });
    // The blob: random data written in 8 MiB pieces.
    const file = join(dir, "blob");
    const hash = createHash("sha256");
    writeFileSync(file, "");
    for (let i = 0; i < MIB / 8; i++) {
      const chunk = randomBytes(8 << 20);
      hash.update(chunk);
      writeFileSync(file, chunk, { flag: "a" });
    }
    const hex = hash.digest("hex");
    await store.blobs.put(hex, createReadStream(file));
    console.log(
      `load average: ${(await import("node:os"))
        .loadavg()
        .map((l) => l.toFixed(1))
        .join(" ")}`,
    );

    // 1. checksums
    const ours: number[] = [];
    const ref: number[] = [];
    for (let i = 0; i < REPS; i++) {
      await storage.delete(keys.derived(hex));
      ours.push(await time(() => store.derived.compute(hex)));
      ref.push(
        await time(() =>
          execFileSync("sh", ["-c", `md5sum '${file}' >/dev/null && sha512sum '${file}' >/dev/null`]),
        ),
      );
    }
    console.log(
      `md5+sha512 of ${MIB} MiB: templar ${median(ours).toFixed(2)} s, md5sum+sha512sum ${median(ref).toFixed(2)} s, ratio ${(median(ref) / median(ours)).toFixed(2)}x`,
    );

    // A registry with one template naming the blob, and many small ones for the index.
    const index = await generateSigningKey({ name: "bench index" });
    await writeFile(join(dir, "index.key.asc"), index.privateKeyArmored);
    await writeFile(
      join(dir, "registry.yaml"),
      stringify({ gc: { interval: 0 }, indexKey: { file: "index.key.asc" } }),
    );
    const manifest = (name: string, digest: string, size: number) =>
      Buffer.from(
        `${JSON.stringify({
          schemaVersion: 1,
          name,
          version: "1.0.0",
          created: "2026-11-25T00:00:00Z",
          rootfs: { tarSha256: hex, tarSize: size, entries: 1 },
          artifacts: [{ format: "tar.gz", digest, size }],
        })}\n`,
      );
    await storage.putIfAbsent(
      keys.manifest("bench-1-x86_64", "1.0.0"),
      manifest("bench-1-x86_64", `sha256:${hex}`, MIB << 20),
    );
    const small = randomBytes(1024);
    const smallHex = createHash("sha256").update(small).digest("hex");
    const { Readable } = await import("node:stream");
    await store.blobs.put(smallHex, Readable.from([small]));
    for (let i = 0; i < TEMPLATES; i++) {
      const name = `bench-${i}-aarch64`;
      await storage.putIfAbsent(keys.manifest(name, "1.0.0"), manifest(name, `sha256:${smallHex}`, 1024));
    }
    const registry = await startRegistry({
      storage,
      configPath: join(dir, "registry.yaml"),
      host: "127.0.0.1",
      port: 0,
      log: () => {},
    });
    try {
      // 2. downloads
      const viaCompat: number[] = [];
      const viaBlob: number[] = [];
      for (let i = 0; i < REPS; i++) {
        await rm(join(dir, "dl"), { recursive: true, force: true });
        viaCompat.push(
          await time(() =>
            run("wget", [
              "-q",
              "-N",
              "-P",
              join(dir, "dl"),
              `${registry.url}/precreated/bench-1-x86_64.tar.gz`,
            ]),
          ),
        );
        await rm(join(dir, "dl"), { recursive: true, force: true });
        viaBlob.push(
          await time(() =>
            run("wget", ["-q", "-O", join(dir, "dl.bin"), `${registry.url}/v1/blobs/sha256:${hex}`]),
          ),
        );
      }
      const rate = (s: number) => (MIB / s).toFixed(0);
      console.log(
        `wget -N /precreated/ ${rate(median(viaCompat))} MiB/s, wget /v1/blobs/ ${rate(median(viaBlob))} MiB/s, ratio ${(median(viaBlob) / median(viaCompat)).toFixed(2)}x`,
      );

      // 3. the index (sums of the small blob are computed on the first request, then cached)
      await fetch(`${registry.url}/aplinfo.dat`).then((r) => r.text());
      const idx: number[] = [];
      const sig: number[] = [];
      for (let i = 0; i < REPS; i++) {
        // The index is memoised for the version-list TTL (2 s): wait it out to time a rebuild.
        await new Promise((r) => setTimeout(r, 2100));
        idx.push(await time(() => fetch(`${registry.url}/aplinfo.dat.gz`).then((r) => r.arrayBuffer())));
        sig.push(await time(() => fetch(`${registry.url}/aplinfo.dat.asc`).then((r) => r.text())));
      }
      console.log(
        `aplinfo.dat.gz with ${TEMPLATES + 1} templates, rebuilt: ${(median(idx) * 1000).toFixed(0)} ms; then aplinfo.dat.asc (same index, signed): ${(median(sig) * 1000).toFixed(0)} ms`,
      );
    } finally {
      await registry.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
