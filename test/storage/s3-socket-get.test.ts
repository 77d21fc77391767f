import { randomBytes } from "node:crypto";
import { type AddressInfo, createServer, type Server, type Socket } from "node:net";
import { Writable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openSocketGet, usableLength } from "../../registry/storage/s3-socket-get.js";
import { closedPort } from "../helpers/rgw.js";

// The socket GET parses S3's response head by hand (s3-socket-get.ts). RGW only ever answers
// well, so the odd answers come from a scripted server here: each must either give exactly the
// announced bytes, fail loudly, or be handed back to the SDK (null) before any byte was used.

type Step = Buffer | string | { wait: number } | "close";
let server: Server;
let port: number;
let script: Step[] = [];
let lastRequest = "";

beforeAll(async () => {
  server = createServer((socket: Socket) => {
    let request = "";
    socket.on("error", () => {});
    socket.on("data", async (chunk) => {
      request += chunk.toString("latin1");
      if (!request.includes("\r\n\r\n")) return;
      lastRequest = request;
      for (const step of script) {
        if (step === "close") return void socket.destroy();
        if (typeof step === "object" && "wait" in step) await new Promise((r) => setTimeout(r, step.wait));
        else socket.write(step);
      }
      socket.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(() => new Promise((resolve) => server.close(resolve)));

const url = (query = "?X-Amz-Signature=abc") => new URL(`http://127.0.0.1:${port}/bucket/blobs/x${query}`);
const head = (status: string, headers: Record<string, string | number>) =>
  `HTTP/1.1 ${status}\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join("")}\r\n`;

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

/** A sink like the registry's response: collects what it is given, may be slow. */
function collector(delayMs = 0): { sink: Writable; bytes: () => Buffer } {
  const parts: Buffer[] = [];
  const sink = new Writable({
    highWaterMark: 16 * 1024,
    write(chunk: Buffer, _enc, done) {
      parts.push(Buffer.from(chunk)); // a copy: the slot is reused once `done` runs
      setTimeout(done, delayMs);
    },
  });
  sink.on("error", () => {});
  return { sink, bytes: () => Buffer.concat(parts) };
}

describe("S3 GET over a bare socket", () => {
  const body = randomBytes(3 * 1024 * 1024 + 77);

  it("reads a body whose head arrives byte by byte and shares a packet with the body", async () => {
    const h = head("200 OK", { "Content-Length": body.length, "Last-Modified": "x" });
    script = [...h.slice(0, 20).split(""), { wait: 5 }, Buffer.concat([Buffer.from(h.slice(20)), body])];
    const stream = await openSocketGet(url());
    expect(stream).not.toBeNull();
    expect((await readAll(stream!)).equals(body)).toBe(true);
    // The presigned URL goes out as it is: path and query, its Host, and nothing that keeps the socket.
    expect(lastRequest).toBe(
      `GET /bucket/blobs/x?X-Amz-Signature=abc HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`,
    );
  });

  it("sends a range through sendTo into a slow sink, every byte in order", async () => {
    const range = { start: 1000, end: body.length - 5 };
    const part = body.subarray(range.start, range.end + 1);
    script = [
      head("206 Partial Content", {
        "Content-Length": part.length,
        "Content-Range": `bytes ${range.start}-${range.end}/${body.length}`,
      }),
      part.subarray(0, 100_000),
      { wait: 20 },
      part.subarray(100_000),
    ];
    const stream = await openSocketGet(url(), range);
    expect(lastRequest).toContain(`\r\nRange: bytes=${range.start}-${range.end}\r\n`);
    const { sink, bytes } = collector(1);
    let counted = 0;
    await stream!.sendTo(sink, (n) => {
      counted += n;
    });
    expect(bytes().equals(part)).toBe(true);
    expect(counted).toBe(part.length);
  });

  it("hands anything but a plain answer back to the SDK (null) without using it", async () => {
    const range = { start: 0, end: 9 };
    const cases: [Step[], typeof range | undefined][] = [
      [[head("403 Forbidden", { "Content-Length": 5 }), "nope!"], undefined],
      [[head("503 Slow Down", { "Content-Length": 0 })], undefined],
      [[head("200 OK", { "Transfer-Encoding": "chunked" }), "5\r\nhello\r\n0\r\n\r\n"], undefined],
      [[head("200 OK", { "Content-Encoding": "gzip", "Content-Length": 3 }), "abc"], undefined],
      [[head("200 OK", {}), "no length"], undefined],
      [["HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"], undefined],
      [[head("200 OK", { "Content-Length": 10 }), "0123456789"], range], // range ignored
      [[head("206 Partial Content", { "Content-Length": 10, "Content-Range": "bytes 1-10/20" })], range],
      [[head("206 Partial Content", { "Content-Length": 9, "Content-Range": "bytes 0-9/20" })], range],
      [[`HTTP/1.1 200 OK\r\nX-Big: ${"a".repeat(70_000)}\r\n`], undefined], // head never ends
      [["HTTP/1.1 200 OK\r\nContent-Len"], undefined], // closed inside the head
      [["close"], undefined],
    ];
    for (const [steps, r] of cases) {
      script = steps;
      expect(await openSocketGet(url(), r), JSON.stringify(steps).slice(0, 80)).toBeNull();
    }
    expect(await openSocketGet(new URL(`http://127.0.0.1:${await closedPort()}/b/k`))).toBeNull();
    // TLS endpoints keep the SDK (and its TLS settings); nothing is attempted here.
    expect(await openSocketGet(new URL("https://127.0.0.1:1/b/k"))).toBeNull();
  });

  it("fails a body that ends early, in both modes, and never pads it", async () => {
    script = [head("200 OK", { "Content-Length": 10 }), "abc", { wait: 20 }, "close"];
    const stream = await openSocketGet(url());
    await expect(readAll(stream!)).rejects.toThrow(/S3 response ended after 3 of 10 bytes/);

    const { sink, bytes } = collector();
    const sent = await openSocketGet(url());
    await expect(sent!.sendTo(sink, () => {})).rejects.toThrow(/ended after 3 of 10 bytes/);
    expect(sink.destroyed).toBe(true);
    expect(bytes().toString()).toBe("abc");
  });

  it("keeps an early failure until someone reads (no unhandled error event)", async () => {
    script = [head("200 OK", { "Content-Length": 10 }), "abc", "close"];
    const stream = await openSocketGet(url());
    await new Promise((r) => setTimeout(r, 50)); // the socket has closed by now
    await expect(readAll(stream!)).rejects.toThrow(/ended after 3 of 10 bytes/);
  });

  it("refuses bytes beyond the announced length", async () => {
    script = [head("200 OK", { "Content-Length": 4 }), "abcdefgh"];
    const stream = await openSocketGet(url());
    await expect(readAll(stream!)).rejects.toThrow(/more than the 4 bytes/);
  });

  it("reads the headers it needs and nothing else", () => {
    const range = { start: 5, end: 9 };
    expect(usableLength("HTTP/1.1 200 OK\r\ncontent-length: 42\r\nETag: x", undefined)).toBe(42);
    expect(usableLength("HTTP/1.0 200 OK\r\nContent-Length:7", undefined)).toBe(7);
    expect(
      usableLength("HTTP/1.1 206 Partial\r\nContent-Length: 5\r\nContent-Range: bytes 5-9/100", range),
    ).toBe(5);
    expect(usableLength("HTTP/1.1 200 OK\r\nContent-Length: -1", undefined)).toBeNull();
    expect(usableLength("HTTP/1.1 200 OK\r\nContent-Length: 1e3", undefined)).toBeNull();
    expect(usableLength("HTTP/1.1 200 OK\r\nbroken header line", undefined)).toBeNull();
    expect(usableLength("HTTP/2 200\r\nContent-Length: 1", undefined)).toBeNull();
  });
});
