import { createHash, randomBytes } from "node:crypto";
import { readdirSync } from "node:fs";
import { mkdtemp, rm, truncate } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AlignedBufferPool } from "../../common/aligned-buffers.js";
import { isDirectSendable } from "../../registry/storage/driver.js";
import { LocalDriver } from "../../registry/storage/local-driver.js";

// Blob downloads write from reused page-aligned slots (local-blob-stream.ts). A slot handed back
// too early, an off-by-one at a page or slot edge, or a leaked file handle would show here.
const MiB = 1 << 20;
const data = randomBytes(5 * MiB + 12_345);
const hex = createHash("sha256").update(data).digest("hex");
let dir: string;
let storage: LocalDriver;
let server: http.Server;
let base: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "templar-blobstream-"));
  storage = new LocalDriver(dir);
  await storage.put(`blobs/sha256/${hex}`, data);
  // GET /<hex>?start=S&end=E sends that range the way the registry does, through sendTo.
  server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    const start = url.searchParams.get("start");
    const range = start ? { start: Number(start), end: Number(url.searchParams.get("end")) } : undefined;
    const stream = await storage.read(`blobs/sha256/${url.pathname.slice(1)}`, range);
    if (!stream || !isDirectSendable(stream)) {
      res.writeHead(500).end();
      return;
    }
    res.writeHead(200);
    stream.sendTo(res, () => {}).catch(() => {});
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

const openFds = () => readdirSync("/proc/self/fd").length;

describe("local blob stream", () => {
  it("sends every byte of whole blobs and of ranges starting and ending anywhere", async () => {
    const ranges: [number, number][] = [
      [0, data.length - 1],
      [1, data.length - 1],
      [4095, 4096],
      [4097, 2 * MiB + 1],
      [MiB - 1, 3 * MiB],
      [2 * MiB, 2 * MiB],
      [data.length - 1, data.length - 1],
    ];
    // In parallel, so several downloads hold slots at once.
    const bodies = await Promise.all(
      ranges.map(([s, e]) => fetch(`${base}/${hex}?start=${s}&end=${e}`).then((r) => r.arrayBuffer())),
    );
    ranges.forEach(([s, e], i) => {
      expect(Buffer.from(bodies[i] as ArrayBuffer).equals(data.subarray(s, e + 1))).toBe(true);
    });
    const whole = Buffer.from(await (await fetch(`${base}/${hex}`)).arrayBuffer());
    expect(whole.equals(data)).toBe(true);
  });

  it("gives its slot back and closes the file when the client goes away mid-body", async () => {
    const before = openFds();
    for (let i = 0; i < 50; i++) {
      const controller = new AbortController();
      const res = await fetch(`${base}/${hex}`, { signal: controller.signal });
      const reader = res.body?.getReader();
      await reader?.read();
      controller.abort();
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(openFds()).toBeLessThanOrEqual(before + 2);
    // 50 abandoned downloads later, slots are free again: many at once still get every byte.
    const bodies = await Promise.all(
      Array.from({ length: 12 }, () => fetch(`${base}/${hex}`).then((r) => r.arrayBuffer())),
    );
    for (const body of bodies) expect(Buffer.from(body).equals(data)).toBe(true);
  });

  it("cuts the body short, never pads it, when the file shrinks under a download", async () => {
    const small = randomBytes(3 * MiB);
    const smallHex = createHash("sha256").update(small).digest("hex");
    await storage.put(`blobs/sha256/${smallHex}`, small);
    const stream = await storage.read(`blobs/sha256/${smallHex}`);
    if (!stream || !isDirectSendable(stream)) throw new Error("local blobs are sent directly");
    // Truncate after open: a damaged disk or an operator's mistake, never our own writes.
    await truncate(join(dir, "blobs", "sha256", smallHex), MiB);
    const chunks: Buffer[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        chunks.push(Buffer.from(chunk));
        done();
      },
    });
    sink.on("error", () => {}); // destroyed with the read error, as pipeline would do
    const failed = await stream.sendTo(sink, () => {}).catch((e: unknown) => e);
    expect(String(failed)).toMatch(/ends early, at byte 1048576/);
    expect(sink.destroyed).toBe(true);
    expect(Buffer.concat(chunks).equals(small.subarray(0, MiB))).toBe(true);
  });
});

describe("aligned buffer pool", () => {
  it("hands out page-aligned slots up to its cap and reuses returned ones", () => {
    const pool = new AlignedBufferPool(64 * 1024, 3 * 64 * 1024, 2);
    const slots = [pool.acquire(), pool.acquire(), pool.acquire()];
    for (const slot of slots) {
      expect(slot?.length).toBe(64 * 1024);
      expect((slot?.byteOffset ?? 1) % 4096).toBe(0);
    }
    expect(pool.available()).toBe(false);
    expect(pool.acquire()).toBeNull();
    pool.release(slots[1] as Buffer);
    expect(pool.acquire()).toBe(slots[1]);
    expect(pool.bytes).toBe(3 * 64 * 1024);
  });

  it("refuses a slot size that is not whole pages", () => {
    expect(() => new AlignedBufferPool(5000, 50_000)).toThrow(/not a multiple of 4096/);
  });
});
