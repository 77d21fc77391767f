/**
 * Benchmark: the `archive` source (download with a pinned sha256 -> verify -> safe two-pass
 * extraction) against the reference `curl -o F URL && sha256sum F && tar -xpf F -C DIR`, on the
 * same artifact served from the same local HTTP server, in the same run.
 *
 *   npm run build && node dist/bench/archive-source.js [--reps N] [--tree DIR] [--codec xz|gz|zst]
 *
 * The artifact is a tar of --tree as a rootfs would hold it (default usr/share, about 700 MB and 50k files, close to a
 * Fedora or Gentoo rootfs in file count) compressed with the codec (default xz -1, as upstreams
 * publish), made once and cached under /var/tmp/templar-bench/. Median wall times are compared.
 */
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { acquire } from "../builder/sources/archive/acquire.js";
import { ArchiveConfigSchema } from "../builder/sources/archive/config.js";
import { applyLayout } from "../builder/sources/archive/layouts.js";

const { values } = parseArgs({
  options: {
    reps: { type: "string", default: "3" },
    tree: { type: "string", default: "/usr/share" },
    codec: { type: "string", default: "xz" },
  },
});
const CACHE = "/var/tmp/templar-bench";
const codecs: Record<string, { ext: string; cmd: string }> = {
  xz: { ext: "tar.xz", cmd: "xz -1 -T2" },
  gz: { ext: "tar.gz", cmd: "gzip -6" },
  zst: { ext: "tar.zst", cmd: "zstd -3 -T2 -q" },
};
const codec = codecs[values.codec!]!;
const name = `root-${values.tree!.replace(/\W+/g, "_")}.${codec.ext}`;
const artifact = join(CACHE, name);
if (!existsSync(artifact)) {
  mkdirSync(CACHE, { recursive: true });
  console.log(`making ${artifact} (once)...`);
  execFileSync("sh", [
    "-c",
    `tar --numeric-owner -C / -cf - '${values.tree!.replace(/^\/+/, "")}' | ${codec.cmd} > '${artifact}.tmp' && mv '${artifact}.tmp' '${artifact}'`,
  ]);
}
const sha256 = createHash("sha256");
for await (const chunk of createReadStream(artifact)) sha256.update(chunk as Buffer);
const pin = sha256.digest("hex");

const server = createServer((req, res) => {
  const size = statSync(artifact).size;
  res.writeHead(200, { "content-length": String(size), etag: `"${pin}"` });
  if (req.method === "HEAD") return res.end();
  createReadStream(artifact, { highWaterMark: 1 << 20 }).pipe(res);
});
await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/${name}`;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const ours: number[] = [];
const reference: number[] = [];
const config = ArchiveConfigSchema.parse({ method: "archive", url, sha256: pin, layout: "rootfs" });

async function runReference(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "bench-ref-"));
  const started = performance.now();
  // Async spawn: the server runs in this process.
  await new Promise<void>((resolve, reject) => {
    const child = spawnAsync(
      `curl -s -o '${dir}/a' '${url}' && sha256sum '${dir}/a' >/dev/null && mkdir '${dir}/r' && tar --numeric-owner -xpf '${dir}/a' -C '${dir}/r'`,
    );
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`reference failed: ${code}`))));
  });
  const seconds = (performance.now() - started) / 1000;
  rmSync(dir, { recursive: true, force: true });
  return seconds;
}

async function runOurs(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "bench-ours-"));
  mkdirSync(join(dir, "root"));
  mkdirSync(join(dir, "work"));
  try {
    const started = performance.now();
    const got = await acquire(config, {
      cacheDir: join(dir, "cache"),
      recipeDir: dir,
      values: { arch: "x86_64", debarch: "amd64", release: "x" },
      log: () => {},
    });
    await applyLayout("rootfs", got.path, join(dir, "root"), {
      workDir: join(dir, "work"),
      ociArch: "amd64",
    });
    return (performance.now() - started) / 1000;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function spawnAsync(script: string) {
  return spawn("sh", ["-c", script], { stdio: "ignore" });
}

console.log(`artifact ${name}: ${(statSync(artifact).size / 2 ** 20).toFixed(0)} MiB`);
for (let i = 0; i < Number(values.reps); i++) {
  reference.push(await runReference());
  ours.push(await runOurs());
  console.log(
    `rep ${i + 1}: reference ${reference.at(-1)!.toFixed(2)} s, templar ${ours.at(-1)!.toFixed(2)} s`,
  );
}
server.close();
const r = median(reference);
const o = median(ours);
console.log(
  `median: curl+sha256sum+tar ${r.toFixed(2)} s, templar archive source ${o.toFixed(2)} s, ratio ${(o / r).toFixed(2)}x`,
);
