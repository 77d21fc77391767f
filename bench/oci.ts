/**
 * OCI pull benchmark: `skopeo copy docker://... oci-archive:...` (what Proxmox VE 9 runs) of a
 * ~200 MiB template from templar's /v2 against the same image served by Debian's
 * `docker-registry` (CNCF distribution 2.8), in one run, both over TLS with a throwaway CA.
 *
 * The template is a real one: a tar of random (incompressible) data, gzip -1, pushed with
 * `templar push`; distribution is seeded from templar with `skopeo copy`, so both serve the
 * same layer bytes. Runs alternate between the two (`--repeat` pairs); the servers run on core 1
 * and skopeo on core 0 when there are two cores (as bench/registry.ts does).
 *
 * Run (skopeo, docker-registry, openssl, tar, gzip installed):  npm run bench:oci
 * Options: --mib 200 --repeat 5
 */
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { copyFile, mkdir, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { makeTestCa } from "../test/helpers/tls.js";
import { hasTool, median, pin, pinServer, type Server, stopChild } from "./registry-tools.js";

// Compiled to dist/bench/oci.js; the CLI is dist/cli/templar.js beside it.
const TEMPLAR = join(import.meta.dirname, "..", "cli", "templar.js");
const { values: opts } = parseArgs({
  options: { mib: { type: "string", default: "200" }, repeat: { type: "string", default: "5" } },
});
const MiB = 1024 * 1024;
const NAME = "bench-1-x86_64-oci";
const VERSION = "1.0.0";

for (const tool of ["skopeo", "docker-registry", "openssl", "tar", "gzip"]) {
  if (!hasTool(tool)) {
    console.error(`bench:oci needs ${tool} (apt-get install skopeo docker-registry openssl)`);
    process.exit(2);
  }
}

const work = await mkdtemp(join(tmpdir(), "templar-bench-oci-"));
const cleanups: (() => Promise<unknown>)[] = [];
try {
  await main();
} finally {
  for (const fn of cleanups.reverse()) await fn().catch(() => {});
  await rm(work, { recursive: true, force: true });
}

async function main(): Promise<void> {
  const mib = Number(opts.mib);
  const repeat = Number(opts.repeat);
  await mkdir(join(work, "ca"));
  const ca = await makeTestCa(join(work, "ca"));
  const certs = join(work, "certs");
  await mkdir(certs);
  await copyFile(ca.caCert, join(certs, "ca.crt"));

  const out = join(work, "out");
  const size = await makeTemplate(out, mib);
  log(`template ${NAME}@${VERSION}: tar.gz of ${(size / MiB).toFixed(1)} MiB`);

  const config = join(work, "registry.yaml");
  await writeFile(config, `anonymousPull: true\ntls: { cert: ${ca.cert}, key: ${ca.key} }\n`);
  const token = execFileSync(
    process.execPath,
    [TEMPLAR, "token", "create", "--scope", "push:*", "--config", config],
    { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] },
  )
    .trim()
    .split("\n")
    .pop()!;
  const templar = await startTemplar(join(work, "data"), config);
  cleanups.push(() => templar.stop());
  execFileSync(process.execPath, [TEMPLAR, "push", out, "--registry", templar.url, "--token", token], {
    env: { ...process.env, NODE_EXTRA_CA_CERTS: ca.caCert },
    stdio: "ignore",
  });
  const distribution = await startDistribution(join(work, "distribution"), ca.cert, ca.key);
  cleanups.push(() => distribution.stop());
  const host = (s: Server) => new URL(s.url).host;
  execFileSync(
    "skopeo",
    [
      ...["copy", "--src-cert-dir", certs, "--dest-cert-dir", certs],
      `docker://${host(templar)}/${NAME}:${VERSION}`,
      `docker://${host(distribution)}/${NAME}:${VERSION}`,
    ],
    { stdio: "ignore" },
  );
  pinServer(templar.pid);
  pinServer(distribution.pid);
  log(
    `servers: templar ${templar.url}, docker-registry ${distribution.url}${pin ? " (core 1; skopeo on core 0)" : ""}`,
  );

  const archive = join(work, "pulled.tar");
  const copy = (s: Server): number => {
    const args = [
      ...["--command-timeout", "300s", "copy", "--quiet", "--src-cert-dir", certs],
      `docker://${host(s)}/${NAME}:${VERSION}`,
      `oci-archive:${archive}`,
    ];
    const start = process.hrtime.bigint();
    execFileSync(pin ? "taskset" : "skopeo", pin ? ["-c", "0", "skopeo", ...args] : args, {
      stdio: "ignore",
    });
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    execFileSync("rm", ["-f", archive]);
    return seconds;
  };
  copy(templar); // warm both (page cache, TLS session code paths)
  copy(distribution);
  const ours: number[] = [];
  const theirs: number[] = [];
  for (let i = 0; i < repeat; i++) {
    ours.push(copy(templar));
    theirs.push(copy(distribution));
    log(`pair ${i + 1}: templar ${ours[i]!.toFixed(2)} s, docker-registry ${theirs[i]!.toFixed(2)} s`);
  }
  const mibs = (s: number) => size / MiB / s;
  const a = mibs(median(ours));
  const b = mibs(median(theirs));
  log(
    `skopeo copy of ${(size / MiB).toFixed(0)} MiB, median of ${repeat}: templar ${a.toFixed(0)} MiB/s, ` +
      `docker-registry 2.8 ${b.toFixed(0)} MiB/s, ratio ${(a / b).toFixed(2)}x (target >= 0.8x) ` +
      (a / b >= 0.8 ? "ok" : "MISSED"),
  );
}

/** A tar of `mib` MiB of random data, gzip -1, and its manifest, as `templar pack` names them. */
async function makeTemplate(out: string, mib: number): Promise<number> {
  const tree = join(work, "tree");
  await mkdir(join(tree, "usr", "share"), { recursive: true });
  await mkdir(out);
  execFileSync("sh", [
    "-c",
    `head -c ${mib * MiB} /dev/urandom > '${join(tree, "usr", "share", "random.bin")}'`,
  ]);
  const tar = join(work, "rootfs.tar");
  const gz = join(out, `${NAME}-${VERSION}.tar.gz`);
  execFileSync("tar", ["--sort=name", "--numeric-owner", "--mtime=@0", "-cf", tar, "-C", tree, "."]);
  execFileSync("sh", ["-c", `gzip -1 -n -c '${tar}' > '${gz}'`]);
  const [tarSha, gzSha] = await Promise.all([sha256(tar), sha256(gz)]);
  const size = (await stat(gz)).size;
  const manifest = {
    schemaVersion: 1,
    name: NAME,
    version: VERSION,
    distro: "bench",
    release: "1",
    arch: "x86_64",
    created: "2026-12-01T00:00:00Z",
    rootfs: { tarSha256: tarSha, tarSize: (await stat(tar)).size, entries: 4 },
    artifacts: [{ format: "tar.gz", digest: `sha256:${gzSha}`, size }],
  };
  await writeFile(join(out, `${NAME}-${VERSION}.manifest.json`), `${JSON.stringify(manifest, null, 2)}\n`);
  await rm(tar);
  return size;
}

async function sha256(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * MiB })) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

async function startTemplar(storage: string, config: string): Promise<Server> {
  const child = spawn(
    process.execPath,
    [TEMPLAR, "serve", "--storage", storage, "--listen", "127.0.0.1:0", "--config", config],
    { stdio: ["ignore", "pipe", "ignore"] },
  );
  const url = await new Promise<string>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`templar serve exited with ${code}`)));
    createInterface({ input: child.stdout! }).on("line", (line) => {
      try {
        const entry = JSON.parse(line) as { event?: string; url?: string };
        if (entry.event === "listening" && entry.url) resolve(entry.url.replace(/\/$/, ""));
      } catch {
        // not JSON
      }
    });
  });
  return { url, pid: child.pid!, stop: () => stopChild(child) };
}

/** docker-registry (distribution 2.8) as a process with its own config: filesystem storage, TLS. */
async function startDistribution(root: string, cert: string, key: string): Promise<Server> {
  const port = await freePort();
  const config = join(work, "distribution.yml");
  await writeFile(
    config,
    [
      "version: 0.1",
      "log: { level: error, accesslog: { disabled: true } }",
      `storage: { filesystem: { rootdirectory: ${root} }, cache: { blobdescriptor: inmemory } }`,
      `http: { addr: "127.0.0.1:${port}", tls: { certificate: ${cert}, key: ${key} } }`,
      "",
    ].join("\n"),
  );
  const child = spawn("docker-registry", ["serve", config], { stdio: "ignore" });
  const url = `https://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`docker-registry exited with ${child.exitCode}`);
    if (await listening(port)) break;
    if (i > 100) throw new Error("docker-registry did not start");
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url, pid: child.pid!, stop: () => stopChild(child) };
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createServer().listen(port, "127.0.0.1");
    socket.once("listening", () => socket.close(() => resolve(false)));
    socket.once("error", () => resolve(true));
  });
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

function log(line: string): void {
  console.log(line);
}
