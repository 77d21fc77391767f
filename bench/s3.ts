/**
 * S3 benchmark (issue 7), one run against one throwaway Ceph RGW (scripts/rgw, memstore):
 *   1. pull of a 200 MiB blob through `templar serve --storage s3://...` with curl, streamed (the
 *      default) and with --s3-redirect (curl -L), vs curl of a presigned URL of the same object
 *      straight from RGW                                              -> ratio of throughputs (target >= 0.8)
 *      When nginx is installed, the same curl through nginx's proxy_pass to RGW (buffered, one
 *      worker) is measured too: what a native proxy gets between the same two sockets on this
 *      machine, where RGW alone keeps more than one of the two cores busy. Any streaming proxy
 *      adds a receive and a send per byte; the redirect does not touch the bytes.
 *   2. push of a 1 GiB blob through the registry (monolithic PUT with curl) vs a lib-storage
 *      Upload of the same file straight to RGW                        -> ratio of times (target <= 1.3)
 * Absolute figures depend on the S3 server (here: one memstore OSD on loopback, on a shared machine).
 *
 * Run: npm run bench:s3   (builds, then node dist/bench/s3.js; needs curl and root or Ceph installed)
 * Env: BENCH_RUNS (default 3; best run counts), BENCH_PULL_MIB (200), BENCH_PUSH_MIB (1024).
 */
import { execFile, execFileSync } from "node:child_process";
import { createReadStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { DeleteObjectCommand } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { sha256File } from "../common/digest.js";
import { createProgress, formatBytes } from "../common/progress.js";
import { S3Driver } from "../registry/storage/s3-driver.js";
import { layout } from "../registry/store/layout.js";
import { Store } from "../registry/store/store.js";
import { writeConfig } from "../test/helpers/registry.js";
import { startRgw } from "../test/helpers/rgw.js";
import { spawnS3Serve } from "../test/helpers/s3-registry.js";
import { type Nginx, startNginx } from "./nginx.js";

const run = promisify(execFile);
const MiB = 1024 * 1024;
const runs = Number(process.env.BENCH_RUNS ?? 3);
const pullBytes = Number(process.env.BENCH_PULL_MIB ?? 200) * MiB;
const pushBytes = Number(process.env.BENCH_PUSH_MIB ?? 1024) * MiB;

async function randomFile(path: string, size: number): Promise<string> {
  // dd from urandom: incompressible, and no GiB-sized buffer in this process.
  await run("dd", ["if=/dev/urandom", `of=${path}`, "bs=1M", `count=${size / MiB}`, "status=none"]);
  return (await sha256File(path)).hex;
}

/** curl's own timing: seconds for the whole transfer. */
async function curl(args: string[]): Promise<number> {
  const { stdout } = await run("curl", ["-sS", "--fail", "-o", "/dev/null", "-w", "%{time_total}", ...args]);
  return Number(stdout);
}

async function best(label: string, n: number, once: () => Promise<number>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) times.push(await once());
  console.log(`  ${label}: ${times.map((t) => `${t.toFixed(2)}s`).join(", ")}`);
  return Math.min(...times);
}

const rate = (bytes: number, seconds: number) => `${formatBytes(bytes / seconds)}/s`;

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "templar-bench-s3-"));
  process.env.RGW_MEMSTORE_BYTES ??= String(10 * 1024 * MiB);
  const progress = createProgress("bench s3", { unit: "items", total: 4 });
  const rgw = await startRgw();
  progress.update(1, "RGW started");
  const storage = new S3Driver(rgw.options());
  const store = new Store(storage, { cacheTtlMs: 2000 });
  const configPath = join(dir, "registry.yaml");
  const { push: token } = (await writeConfig(configPath, { tokens: { push: ["push:*"] } })) as {
    push: string;
  };
  const serve = await spawnS3Serve(rgw, { bucket: rgw.bucket, configPath });
  try {
    const pullFile = join(dir, "pull.bin");
    const pushFile = join(dir, "push.bin");
    const pullHex = await randomFile(pullFile, pullBytes);
    const pushHex = await randomFile(pushFile, pushBytes);
    progress.update(2, "files made");
    await store.blobs.put(pullHex, createReadStream(pullFile, { highWaterMark: MiB }));

    console.log(`\npull ${formatBytes(pullBytes)} (curl to /dev/null, best of ${runs}, interleaved)`);
    // The same registry with --s3-redirect: one 307, then the bytes come straight from RGW.
    const redirecting = await spawnS3Serve(rgw, { bucket: rgw.bucket, configPath, args: ["--s3-redirect"] });
    const nginx = await startNginxProxy(join(dir, "nginx"), rgw.env.TEMPLAR_S3_ENDPOINT!);
    const times = {
      streamed: [] as number[],
      redirect: [] as number[],
      direct: [] as number[],
      ...(nginx ? { "nginx proxy": [] as number[] } : {}),
    };
    for (let i = 0; i < runs; i++) {
      times.streamed.push(await curl([`${serve.url}/v1/blobs/sha256:${pullHex}`]));
      times.redirect.push(await curl(["-L", `${redirecting.url}/v1/blobs/sha256:${pullHex}`]));
      const presigned = (await new S3Driver({ ...rgw.options(), redirect: true }).downloadUrl(
        layout.blob(pullHex),
      ))!;
      times.direct.push(await curl([presigned]));
      if (nginx)
        times["nginx proxy"]?.push(
          await curl([nginx.url + new URL(presigned).pathname + new URL(presigned).search]),
        );
    }
    await redirecting.stop();
    await nginx?.stop();
    for (const [label, list] of Object.entries(times)) {
      console.log(`  ${label}: ${list.map((t) => `${t.toFixed(2)}s`).join(", ")}`);
    }
    const [viaRegistry, viaRedirect, direct] = [times.streamed, times.redirect, times.direct].map((l) =>
      Math.min(...l),
    ) as [number, number, number];
    const pullRatio = direct / viaRegistry; // throughput ratio registry/direct
    const redirectRatio = direct / viaRedirect;
    const viaNginx = times["nginx proxy"] ? Math.min(...times["nginx proxy"]) : null;
    progress.update(3, "pull measured");

    console.log(`\npush ${formatBytes(pushBytes)} (best of ${runs})`);
    const blobKey = storage.fullKey(layout.blob(pushHex));
    const remove = () => storage.client.send(new DeleteObjectCommand({ Bucket: rgw.bucket, Key: blobKey }));
    const pushRegistry = await best("registry PUT /v1/blobs (curl -T)", runs, async () => {
      await remove();
      return curl([
        "-T",
        pushFile,
        "-H",
        `Authorization: Bearer ${token}`,
        "-H",
        "Content-Type: application/octet-stream",
        `${serve.url}/v1/blobs/sha256:${pushHex}`,
      ]);
    });
    if ((await store.blobs.stat(pushHex))?.size !== pushBytes) throw new Error("pushed blob is missing");
    const pushLibStorage = await best("lib-storage Upload (defaults)", runs, async () => {
      await remove();
      const started = performance.now();
      await new Upload({
        client: storage.client,
        params: {
          Bucket: rgw.bucket,
          Key: blobKey,
          Body: createReadStream(pushFile, { highWaterMark: MiB }),
        },
      }).done();
      return (performance.now() - started) / 1000;
    });
    const pushRatio = pushRegistry / pushLibStorage;
    progress.finish("done");

    const summary = [
      "",
      "results (absolute figures depend on the S3 server: one memstore OSD on loopback here)",
      `  pull ${formatBytes(pullBytes)}: registry ${rate(pullBytes, viaRegistry)}, RGW presigned ${rate(pullBytes, direct)}` +
        ` -> ratio ${pullRatio.toFixed(2)}x (target >= 0.8x) ${pullRatio >= 0.8 ? "OK" : "MISSED"}`,
      `  pull ${formatBytes(pullBytes)} via --s3-redirect: ${rate(pullBytes, viaRedirect)}` +
        ` -> ratio ${redirectRatio.toFixed(2)}x (target >= 0.8x) ${redirectRatio >= 0.8 ? "OK" : "MISSED"}`,
      viaNginx
        ? `  pull ${formatBytes(pullBytes)} via nginx proxy_pass (reference): ${rate(pullBytes, viaNginx)}` +
          ` -> ratio ${(direct / viaNginx).toFixed(2)}x; registry/nginx ${(viaNginx / viaRegistry).toFixed(2)}x`
        : "  (nginx not installed: no native-proxy reference)",
      `  push ${formatBytes(pushBytes)}: registry ${pushRegistry.toFixed(2)}s (${rate(pushBytes, pushRegistry)}),` +
        ` lib-storage ${pushLibStorage.toFixed(2)}s (${rate(pushBytes, pushLibStorage)})` +
        ` -> ratio ${pushRatio.toFixed(2)}x (target <= 1.3x) ${pushRatio <= 1.3 ? "OK" : "MISSED"}`,
    ];
    console.log(summary.join("\n"));
  } finally {
    await serve.stop();
    storage.client.destroy();
    await rgw.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/** nginx proxying to RGW unchanged (the presigned URL's Host), or null without nginx. */
async function startNginxProxy(dir: string, endpoint: string): Promise<Nginx | null> {
  try {
    execFileSync("nginx", ["-v"], { stdio: "ignore" });
  } catch {
    return null;
  }
  const upstream = new URL(endpoint);
  return startNginx(
    dir,
    `location / {
      proxy_pass http://${upstream.host};
      proxy_http_version 1.1;
      proxy_set_header Host ${upstream.host};
      proxy_buffering on;
      proxy_max_temp_file_size 0;
    }`,
  );
}

main().catch((err: unknown) => {
  console.error(`bench s3: ${(err as Error).message}`);
  process.exitCode = 1;
});
