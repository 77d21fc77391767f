/**
 * Registry benchmarks against reference tools, in one run, on loopback (issue 5):
 *   1. one 1 GiB blob download, registry vs nginx (sendfile, one worker), curl as the client
 *   2. 32 concurrent downloads of a 200 MiB blob, aggregate throughput vs nginx; registry peak RSS
 *   3. `templar push` of a 1 GiB artifact vs `sha256sum` + `cp` of the same file
 *   4. manifest resolution by semver range under load vs a bare node:http server sending fixed JSON
 *   5. `templar pull` of the 1 GiB artifact vs curl + sha256sum of the same blob (client side)
 *
 * Run (as root, nginx and curl installed):  npm run bench:registry (npm run build && node dist/bench/registry.js)
 * Options: --big-mib 1024 --small-mib 200 --concurrent 32 --seconds 5 --connections 16 --repeat 5
 * (each comparison alternates between ours and the reference, `repeat` times; the downloads
 * compare medians, the rest the best run)
 * Prints each figure and its ratio to the reference with the target. Temporary files go under
 * os.tmpdir() and are removed at the end.
 */
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startNginx } from "./nginx.js";
import {
  concurrentCurl,
  curlTime,
  hasTool,
  load,
  median,
  pin,
  pinServer,
  type Server,
  sampleRss,
  startBare,
  stopChild,
} from "./registry-tools.js";

// Compiled to dist/bench/registry.js; the CLI is dist/cli/templar.js beside it.
const TEMPLAR = join(import.meta.dirname, "..", "cli", "templar.js");
const { values: opts } = parseArgs({
  options: {
    "big-mib": { type: "string", default: "1024" },
    "small-mib": { type: "string", default: "200" },
    concurrent: { type: "string", default: "32" },
    seconds: { type: "string", default: "5" },
    connections: { type: "string", default: "16" },
    repeat: { type: "string", default: "5" },
  },
});

const MiB = 1024 * 1024;
interface Result {
  what: string;
  value: string;
  ratio?: number;
  target: string;
  ok: boolean;
}
const results: Result[] = [];
const work = await mkdtemp(join(tmpdir(), "templar-bench-"));
const cleanups: (() => Promise<unknown>)[] = [];
try {
  await main();
} finally {
  for (const fn of cleanups.reverse()) await fn().catch(() => {});
  await rm(work, { recursive: true, force: true });
}

async function main(): Promise<void> {
  const bigMiB = Number(opts["big-mib"]);
  const smallMiB = Number(opts["small-mib"]);
  const concurrent = Number(opts.concurrent);
  const repeat = Math.max(1, Number(opts.repeat));
  const seconds = Number(opts.seconds);
  const connections = Number(opts.connections);
  for (const tool of ["curl", "nginx", "sha256sum", "cp"]) {
    if (!hasTool(tool)) throw new Error(`bench needs ${tool} (apt-get install nginx curl)`);
  }
  log(`work directory ${work}`);
  const big = await template("bench-big-x86_64", "1.0.0", bigMiB);
  const small = await template("bench-small-x86_64", "1.0.0", smallMiB);

  const storage = join(work, "storage");
  const config = join(work, "registry.yaml");
  await writeFile(config, "gc:\n  interval: 0\n");
  const token = execFileSync(
    process.execPath,
    [TEMPLAR, "token", "create", "--config", config, "--scope", "push:*", "--scope", "pull:*"],
    { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] },
  )
    .trim()
    .split("\n")
    .pop()!;

  // 3. push vs sha256sum + cp (the file is in the page cache for both).
  let registry = await startRegistry(storage, config);
  const copyTarget = join(work, "copy.bin");
  const reference = time(() => {
    execFileSync("sha256sum", [big.file], { stdio: "ignore" });
    execFileSync("cp", [big.file, copyTarget]);
  });
  await rm(copyTarget);
  const pushSeconds = time(() =>
    execFileSync(process.execPath, [TEMPLAR, "push", big.dir, "--registry", registry.url], {
      env: { ...process.env, TEMPLAR_TOKEN: token },
      stdio: "ignore",
    }),
  );
  record(
    `push ${bigMiB} MiB: templar push vs sha256sum+cp`,
    pushSeconds,
    reference,
    "s",
    "at most 1.5x",
    pushSeconds / reference <= 1.5,
  );
  execFileSync(process.execPath, [TEMPLAR, "push", small.dir, "--registry", registry.url], {
    env: { ...process.env, TEMPLAR_TOKEN: token },
    stdio: "ignore",
  });
  await publishVersions(registry.url, token, small.digest, small.size, 200);
  await registry.stop();

  // A fresh registry process for the downloads, so its peak RSS is theirs alone.
  registry = await startRegistry(storage, config);
  cleanups.push(() => registry.stop());
  pinServer(registry.pid);
  // nginx as a fast static server: sendfile on, one worker, pinned like the registry.
  const nginx = await startNginx(join(work, "nginx"), `root ${join(storage, "blobs", "sha256")};`);
  pinServer(nginx.pid);
  cleanups.push(() => nginx.stop());
  const blobUrl = (base: string, d: string) => `${base}/v1/blobs/${d}`;
  const nginxUrl = (d: string) => `${nginx.url}/${d.slice(7)}`;

  // 1. one big download; runs alternate between the two servers and the medians count: on this
  // shared VM a single nginx run varies from 1.7 to 3.3 GB/s, so a best-of compares outliers.
  const regTimes: number[] = [];
  const nginxTimes: number[] = [];
  for (let i = 0; i < repeat; i++) {
    regTimes.push(curlTime(blobUrl(registry.url, big.digest)));
    nginxTimes.push(curlTime(nginxUrl(big.digest)));
  }
  const oneReg = median(regTimes);
  const oneNginx = median(nginxTimes);
  const mibps = (times: number[], mib: number) =>
    times.map((t) => ((mib * MiB) / t / MiB).toFixed(0)).join(" ");
  log(`download runs (MiB/s): registry ${mibps(regTimes, bigMiB)} | nginx ${mibps(nginxTimes, bigMiB)}`);
  const regRate = (bigMiB * MiB) / oneReg;
  const nginxRate = (bigMiB * MiB) / oneNginx;
  record(
    `download ${bigMiB} MiB: registry vs nginx`,
    regRate / MiB,
    nginxRate / MiB,
    "MiB/s",
    "at least 0.8x",
    regRate / nginxRate >= 0.8,
  );

  // 2. concurrent downloads of the small blob.
  const rss = sampleRss(registry.pid);
  const concRegTimes: number[] = [];
  const concNginxTimes: number[] = [];
  for (let i = 0; i < Math.max(1, repeat - 2); i++) {
    concRegTimes.push(await concurrentCurl(blobUrl(registry.url, small.digest), concurrent));
    concNginxTimes.push(await concurrentCurl(nginxUrl(small.digest), concurrent));
  }
  const concReg = median(concRegTimes);
  const concNginx = median(concNginxTimes);
  log(
    `concurrent runs (aggregate MiB/s): registry ${mibps(concRegTimes, concurrent * smallMiB)} | nginx ${mibps(concNginxTimes, concurrent * smallMiB)}`,
  );
  const hwm = rss.stop();
  const aggReg = (concurrent * smallMiB) / concReg;
  const aggNginx = (concurrent * smallMiB) / concNginx;
  record(
    `${concurrent} concurrent downloads of ${smallMiB} MiB: registry vs nginx (aggregate)`,
    aggReg,
    aggNginx,
    "MiB/s",
    "at least 0.7x",
    aggReg / aggNginx >= 0.7,
  );
  results.push({
    what: "registry peak RSS (VmHWM) after the downloads",
    value: `${(hwm / 1024).toFixed(0)} MB`,
    target: "under 150 MB",
    ok: hwm / 1024 < 150,
  });

  // 5. (client) templar pull, verified while streaming, vs curl then sha256sum of the file.
  const cache = join(work, "cache");
  const curlFile = join(work, "curl.bin");
  let pullSeconds = Number.POSITIVE_INFINITY;
  let curlSha = Number.POSITIVE_INFINITY;
  for (let i = 0; i < repeat; i++) {
    await rm(cache, { recursive: true, force: true });
    pullSeconds = Math.min(
      pullSeconds,
      time(() =>
        execFileSync(
          process.execPath,
          [
            TEMPLAR,
            "pull",
            "bench-big-x86_64@1.0.0",
            "--registry",
            registry.url,
            "--dest",
            cache,
            "--allow-unsigned",
          ],
          { stdio: "ignore" },
        ),
      ),
    );
    curlSha = Math.min(
      curlSha,
      time(() => {
        execFileSync("curl", ["-sS", "-f", "-o", curlFile, blobUrl(registry.url, big.digest)]);
        execFileSync("sha256sum", [curlFile], { stdio: "ignore" });
      }),
    );
    await rm(curlFile);
  }
  record(
    `pull ${bigMiB} MiB: templar pull vs curl + sha256sum (same registry)`,
    pullSeconds,
    curlSha,
    "s",
    "at most 1.0x (informational)",
    pullSeconds <= curlSha,
  );

  // 4. range resolution under load vs a bare node:http server answering fixed JSON.
  const manifestBytes = await (
    await fetch(`${registry.url}/v1/templates/bench-range-x86_64/1.0.0`)
  ).arrayBuffer();
  // The bare server is a child process like the registry, pinned like it.
  const manifestFile = join(work, "bare-manifest.json");
  await writeFile(manifestFile, Buffer.from(manifestBytes));
  const bare = await startBare(manifestFile);
  cleanups.push(() => bare.stop());
  for (const pid of [registry.pid, bare.pid]) pinServer(pid);
  let rangeRps = 0;
  let bareRps = 0;
  for (let i = 0; i < Math.max(3, repeat); i++) {
    rangeRps = Math.max(
      rangeRps,
      await load(
        `${registry.url}/v1/templates/bench-range-x86_64/${encodeURIComponent("^1")}`,
        seconds,
        connections,
      ),
    );
    bareRps = Math.max(bareRps, await load(bare.url, seconds, connections));
  }
  record(
    "manifest by range (^1 over 200 versions) vs bare node:http fixed JSON",
    rangeRps,
    bareRps,
    "req/s",
    "at least 0.5x",
    rangeRps / bareRps >= 0.5,
  );

  const load1 = (await readFile("/proc/loadavg", "utf8")).split(" ")[0];
  const pinning = pin ? "servers pinned to core 1, clients to core 0" : "not pinned";
  process.stdout.write(
    `\nresults (${pinning}; load average ${load1} on ${cpus().length} cores at the end)\n`,
  );
  for (const r of results) {
    const ratio = r.ratio === undefined ? "" : ` ratio ${r.ratio.toFixed(2)}x`;
    process.stdout.write(`  ${r.ok ? "ok  " : "MISS"} ${r.what}: ${r.value}${ratio} (target ${r.target})\n`);
  }
}

function log(line: string): void {
  process.stderr.write(`bench: ${line}\n`);
}

function record(
  what: string,
  ours: number,
  reference: number,
  unit: string,
  target: string,
  ok: boolean,
): void {
  const fmt = (n: number) => (n >= 100 ? n.toFixed(0) : n.toFixed(2));
  results.push({
    what,
    value: `${fmt(ours)} ${unit} vs ${fmt(reference)} ${unit}`,
    ratio: ours / reference,
    target,
    ok,
  });
  log(`${what}: ${fmt(ours)} ${unit} vs ${fmt(reference)} ${unit} (${(ours / reference).toFixed(2)}x)`);
}

function time(fn: () => unknown): number {
  const start = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

/** Random bytes as a fake tar.gz artifact with a manifest, as `templar pack` would leave them. */
interface BenchTemplate {
  dir: string;
  file: string;
  digest: string;
  size: number;
}

async function template(name: string, version: string, mib: number): Promise<BenchTemplate> {
  const dir = join(work, name);
  await mkdir(dir);
  const file = join(dir, `${name}-${version}.tar.gz`);
  execFileSync("sh", ["-c", `head -c ${mib * MiB} /dev/urandom > '${file}'`]);
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file, { highWaterMark: 4 * MiB })) hash.update(chunk as Buffer);
  const digest = `sha256:${hash.digest("hex")}`;
  const size = mib * MiB;
  await writeFile(join(dir, `${name}-${version}.manifest.json`), manifestJson(name, version, digest, size));
  return { dir, file, digest, size };
}

function manifestJson(name: string, version: string, digest: string, size: number): string {
  const manifest = {
    schemaVersion: 1,
    name,
    version,
    distro: "bench",
    release: "1",
    arch: "x86_64",
    created: "2026-11-25T00:00:00Z",
    rootfs: { tarSha256: "0".repeat(64), tarSize: size, entries: 1 },
    artifacts: [{ format: "tar.gz", digest, size }],
    packages: Array.from({ length: 100 }, (_, i) => ({
      name: `package-${i}`,
      version: "1.0-1",
      arch: "amd64",
    })),
  };
  return `${JSON.stringify(manifest, null, 2)}\n`;
}

/** 200 versions of one template (1.0.0 ... 1.19.9) naming the small blob, for range resolution. */
async function publishVersions(url: string, token: string, digest: string, size: number, count: number) {
  for (let i = 0; i < count; i++) {
    const version = `1.${Math.floor(i / 10)}.${i % 10}`;
    const res = await fetch(`${url}/v1/templates/bench-range-x86_64/${version}`, {
      method: "PUT",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: manifestJson("bench-range-x86_64", version, digest, size),
    });
    if (!res.ok) throw new Error(`publishing ${version}: ${res.status} ${await res.text()}`);
  }
}

async function startRegistry(storage: string, config: string): Promise<Server> {
  // The request log goes to a file, as it would to journald: reading it here would cost this
  // process CPU that the load generator and the reference server need.
  const logFile = join(work, `registry-${Date.now()}.log`);
  const out = await open(logFile, "w");
  const child = spawn(
    process.execPath,
    [TEMPLAR, "serve", "--storage", storage, "--listen", "127.0.0.1:0", "--config", config],
    { stdio: ["ignore", out.fd, "ignore"] },
  );
  await out.close();
  let exited = false;
  child.on("exit", () => {
    exited = true;
  });
  let url: string | null = null;
  for (let i = 0; i < 300 && !url; i++) {
    if (exited) throw new Error("templar serve exited early");
    await new Promise((r) => setTimeout(r, 50));
    const line = (await readFile(logFile, "utf8")).split("\n").find((l) => l.includes('"listening"'));
    if (line) url = (JSON.parse(line) as { url: string }).url.replace(/\/$/, "");
  }
  if (!url) throw new Error("templar serve did not start");
  return {
    url,
    pid: child.pid!,
    stop: () => stopChild(child),
  };
}
