import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { CreateBucketCommand, type S3Client } from "@aws-sdk/client-s3";
import { createS3Client } from "../../registry/storage/s3-client.js";
import type { S3Options } from "../../registry/storage/s3-config.js";

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
/** scripts/rgw, from test/helpers/ or from its compiled copy under dist/ (bench). */
export const RGW_SCRIPT = [resolve(here, "../../scripts/rgw"), resolve(here, "../../../scripts/rgw")].find(
  (p) => existsSync(p),
)!;

/** A running throwaway Ceph RGW (scripts/rgw), with the settings it printed. */
export interface Rgw {
  dir: string;
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** A bucket the script created. */
  bucket: string;
  /** The env lines as printed (TEMPLAR_S3_*, AWS_*), for child processes. */
  env: Record<string, string>;
  /** S3 options for a bucket on this server (path style, credentials). */
  options(bucket?: string, prefix?: string): S3Options;
  client(): S3Client;
  /** Creates a fresh bucket with a random name and returns it. */
  createBucket(): Promise<string>;
  stop(): Promise<void>;
}

/** Parses `KEY=value` lines (what `scripts/rgw start` prints). */
export function parseEnvLines(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) env[m[1]!] = m[2]!;
  }
  return env;
}

export async function startRgw(): Promise<Rgw> {
  const parent = await mkdtemp(join(tmpdir(), "templar-rgw-"));
  const dir = join(parent, "ceph");
  let stdout: string;
  try {
    ({ stdout } = await run(RGW_SCRIPT, ["start", dir], { timeout: 240_000, maxBuffer: 1 << 20 }));
  } catch (err) {
    await rm(parent, { recursive: true, force: true });
    const e = err as { stderr?: string; message: string };
    const tail = (e.stderr ?? "").trim().split("\n").slice(-3).join(" | ");
    throw new Error(`scripts/rgw start failed: ${tail || e.message}`);
  }
  const env = parseEnvLines(stdout);
  const need = ["TEMPLAR_S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "TEMPLAR_S3_BUCKET"];
  for (const name of need) if (!env[name]) throw new Error(`scripts/rgw start printed no ${name}`);
  const rgw: Rgw = {
    dir,
    endpoint: env.TEMPLAR_S3_ENDPOINT!,
    region: env.TEMPLAR_S3_REGION ?? "us-east-1",
    accessKeyId: env.AWS_ACCESS_KEY_ID!,
    secretAccessKey: env.AWS_SECRET_ACCESS_KEY!,
    bucket: env.TEMPLAR_S3_BUCKET!,
    env,
    options(bucket = rgw.bucket, prefix = "") {
      return {
        bucket,
        prefix,
        endpoint: rgw.endpoint,
        region: rgw.region,
        forcePathStyle: true,
        accessKeyId: rgw.accessKeyId,
        secretAccessKey: rgw.secretAccessKey,
      };
    },
    client() {
      return createS3Client(rgw.options());
    },
    async createBucket() {
      const name = `t-${randomBytes(6).toString("hex")}`;
      const client = rgw.client();
      await client.send(new CreateBucketCommand({ Bucket: name }));
      client.destroy();
      return name;
    },
    async stop() {
      await run(RGW_SCRIPT, ["stop", dir], { timeout: 60_000 }).catch(() => {});
      await rm(parent, { recursive: true, force: true });
    },
  };
  return rgw;
}

/**
 * For a test file: a running RGW, or null with the reason printed (the caller skips).
 * Under CI=true a failure to start throws: CI must run these tests (.ci/run installs Ceph).
 */
export async function rgwForTests(): Promise<Rgw | null> {
  try {
    return await startRgw();
  } catch (err) {
    const reason = (err as Error).message;
    if (process.env.CI === "true") throw new Error(`Ceph RGW is required under CI: ${reason}`);
    console.warn(`skipping S3 tests: ${reason}`);
    return null;
  }
}

/** A loopback port nothing listens on (taken from the kernel, then released): an unreachable S3 endpoint. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  const port = (server.address() as { port: number }).port;
  await new Promise((done) => server.close(done));
  return port;
}
