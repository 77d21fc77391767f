import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { StorageDriver } from "../../registry/storage/driver.js";

/**
 * The one suite every storage driver must pass (registry/storage/driver.ts), in the spirit of
 * distribution's registry/storage/driver/testsuites. Call it from <driver>.test.ts with a factory
 * that gives a fresh, empty driver and a cleanup; tests within a suite share one driver, so each
 * uses its own keys.
 */
export interface DriverFixture {
  driver: StorageDriver;
  cleanup(): Promise<void>;
}

export function driverConformance(name: string, make: () => Promise<DriverFixture>): void {
  describe(`storage driver conformance: ${name}`, () => {
    let fixture: DriverFixture;
    let d: StorageDriver;
    beforeAll(async () => {
      fixture = await make();
      d = fixture.driver;
    });
    afterAll(async () => {
      await fixture?.cleanup();
    });

    it("is ready", async () => {
      await expect(d.check()).resolves.toBeUndefined();
      expect(typeof d.kind).toBe("string");
      expect(d.atomicWriteLimit).toBeGreaterThanOrEqual(1024 * 1024);
    });

    describe("objects", () => {
      it("creates if absent, exactly once", async () => {
        const key = "templates/conf-a/versions/1.0.0.json";
        expect(await d.get(key)).toBeNull();
        expect(await d.stat(key)).toBeNull();
        expect(await d.putIfAbsent(key, Buffer.from("first"))).toBe(true);
        expect(await d.putIfAbsent(key, Buffer.from("second"))).toBe(false);
        expect((await d.get(key))?.toString()).toBe("first");
        const info = await d.stat(key);
        expect(info).toMatchObject({ key, size: 5 });
        expect(info?.modified).toBeInstanceOf(Date);
      });

      it("has exactly one winner among 50 concurrent create-if-absent writers", async () => {
        const key = "templates/conf-race/versions/2.0.0.json";
        const bodies = Array.from({ length: 50 }, (_, i) =>
          Buffer.from(`writer ${i} ${"x".repeat(i * 100)}`),
        );
        const won = await Promise.all(bodies.map((b) => d.putIfAbsent(key, b)));
        expect(won.filter(Boolean)).toHaveLength(1);
        const winner = bodies[won.indexOf(true)]!;
        expect((await d.get(key))?.equals(winner)).toBe(true);
      });

      it("replaces atomically: concurrent readers see old or new bytes, never a mix", async () => {
        const key = "templates/conf-b/tags/latest";
        const old = Buffer.alloc(64 * 1024, "a");
        const next = Buffer.alloc(64 * 1024, "b");
        await d.put(key, old);
        const reads: Promise<Buffer | null>[] = [];
        const writes: Promise<void>[] = [];
        for (let i = 0; i < 20; i++) {
          writes.push(d.put(key, i % 2 ? old : next));
          reads.push(d.get(key));
        }
        await Promise.all(writes);
        for (const r of await Promise.all(reads)) {
          expect(r === null ? "null" : r.equals(old) || r.equals(next) ? "ok" : "mixed").toBe("ok");
        }
        await d.put(key, Buffer.from("1.2.3"));
        expect((await d.get(key))?.toString()).toBe("1.2.3");
      });

      it("deletes objects (and deleting a missing one is fine)", async () => {
        const key = "templates/conf-c/tags/stable";
        await d.put(key, Buffer.from("x"));
        await d.delete(key);
        expect(await d.get(key)).toBeNull();
        expect(await d.stat(key)).toBeNull();
        await expect(d.delete(key)).resolves.toBeUndefined();
        // A deleted create-if-absent key can be created again.
        expect(await d.putIfAbsent(key, Buffer.from("y"))).toBe(true);
      });

      it("lists by prefix in key order, with sizes", async () => {
        const keys = [
          "templates/conf-list/versions/1.0.0.json",
          "templates/conf-list/versions/1.0.0.json.asc",
          "templates/conf-list/versions/10.0.0.json",
          "templates/conf-list/versions/2.0.0.json",
          "templates/conf-list/tags/latest",
          "templates/conf-list.x/versions/1.0.0.json",
          "templates/conf-lisz/versions/1.0.0.json",
        ];
        for (const [i, key] of keys.entries()) await d.put(key, Buffer.alloc(i + 1));
        const under = await collect(d.list("templates/conf-list/"));
        expect(under.map((o) => o.key)).toEqual([
          "templates/conf-list/tags/latest",
          "templates/conf-list/versions/1.0.0.json",
          "templates/conf-list/versions/1.0.0.json.asc",
          "templates/conf-list/versions/10.0.0.json",
          "templates/conf-list/versions/2.0.0.json",
        ]);
        expect(under.find((o) => o.key.endsWith("/tags/latest"))?.size).toBe(5);
        expect(under.every((o) => o.modified instanceof Date)).toBe(true);
        // A prefix that ends inside a name; key order puts "." before "/".
        const partial = (await collect(d.list("templates/conf-lis"))).map((o) => o.key);
        expect(partial).toEqual([
          "templates/conf-list.x/versions/1.0.0.json",
          ...under.map((o) => o.key),
          "templates/conf-lisz/versions/1.0.0.json",
        ]);
        expect(await collect(d.list("templates/conf-nothing/"))).toEqual([]);
        for (const o of await collect(d.list("templates/")))
          expect(o.key.startsWith("templates/")).toBe(true);
      });

      it("lists 1,100 keys under one prefix completely (more than one S3 page)", async () => {
        const prefix = "templates/conf-many/versions/";
        const want: string[] = [];
        for (let i = 0; i < 1100; i++) want.push(`${prefix}${i}.0.0.json`);
        for (let i = 0; i < want.length; i += 100) {
          await Promise.all(want.slice(i, i + 100).map((k) => d.put(k, Buffer.from("{}"))));
        }
        const got = (await collect(d.list(prefix))).map((o) => o.key);
        expect(got).toEqual([...want].sort());
      });

      it("refuses keys that could leave the layout", async () => {
        for (const key of ["", "/abs", "a//b", "a/../b", "a/./b", "..", "a\0b"]) {
          await expect(d.get(key), key).rejects.toThrow(/invalid storage key/);
          await expect(d.put(key, Buffer.from("x")), key).rejects.toThrow(/invalid storage key/);
        }
      });
    });

    describe("streamed reads and writes", () => {
      it("publishes a streamed write only once it ended, and reads it back in ranges", async () => {
        const key = "blobs/sha256/conf-stream";
        const data = randomBytes(3 * 1024 * 1024 + 17);
        const writer = await d.write(key);
        writer.stream.write(data.subarray(0, 1_000_000));
        expect(await d.stat(key)).toBeNull(); // nothing visible while it is written
        await pipeline(chunked(data.subarray(1_000_000), 65536), writer.stream);
        expect(await writer.done).toBe(true);
        expect((await d.stat(key))?.size).toBe(data.length);
        expectBytes(await readAll(await d.read(key)), data);
        const cases: [number, number][] = [
          [0, 0],
          [0, 9],
          [5, 5],
          [1000, 1_500_000],
          [1 << 20, (2 << 20) + 3],
          [data.length - 1, data.length - 1],
          [17, data.length - 1],
        ];
        for (const [start, end] of cases) {
          const got = await readAll(await d.read(key, { start, end }));
          expect(got.equals(data.subarray(start, end + 1)), `range ${start}-${end}`).toBe(true);
        }
        expect(await d.read("blobs/sha256/conf-absent")).toBeNull();
      });

      it("writes an empty object", async () => {
        const writer = await d.write("blobs/sha256/conf-empty");
        writer.stream.end();
        expect(await writer.done).toBe(true);
        expect((await d.stat("blobs/sha256/conf-empty"))?.size).toBe(0);
        expect((await readAll(await d.read("blobs/sha256/conf-empty"))).length).toBe(0);
      });

      it("leaves nothing when a write is destroyed midway", async () => {
        const key = "blobs/sha256/conf-destroyed";
        const writer = await d.write(key);
        writer.stream.write(randomBytes(9 * 1024 * 1024));
        writer.stream.destroy(new Error("connection reset"));
        await expect(writer.done).rejects.toThrow();
        expect(await d.stat(key)).toBeNull();
        expect(await collect(d.list("blobs/sha256/conf-destroyed"))).toEqual([]);
      });

      it("replaces an object by a streamed write", async () => {
        const key = "uploads/conf-replace/x";
        await d.put(key, Buffer.from("old"));
        const writer = await d.write(key);
        writer.stream.end(Buffer.from("new bytes"));
        expect(await writer.done).toBe(true);
        expect((await d.get(key))?.toString()).toBe("new bytes");
      });

      it("creates a streamed write only if absent: exactly one of racing writers wins", async () => {
        const key = "uploads/conf-piece/p/0000000000000000";
        const bodies = Array.from({ length: 8 }, (_, i) => Buffer.alloc(100_000 + i, i));
        const writers = await Promise.all(bodies.map(() => d.write(key, { ifAbsent: true })));
        for (const [i, w] of writers.entries()) w.stream.end(bodies[i]);
        const won = await Promise.all(writers.map((w) => w.done));
        expect(won.filter(Boolean)).toHaveLength(1);
        expect((await d.get(key))?.equals(bodies[won.indexOf(true)]!)).toBe(true);
      });

      it("a stream that is read survives a delete of its object", async () => {
        const key = "blobs/sha256/conf-survive";
        const data = randomBytes(2 * 1024 * 1024);
        await d.put(key, data);
        const stream = await d.read(key);
        await d.delete(key);
        // Local files stay readable once open; S3 streams started before the delete too, or the
        // driver re-reads nothing: either way no wrong byte comes out.
        const got = await readAll(stream).catch(() => null);
        if (got) expectBytes(got, data);
      });
    });

    describe("concatenation", () => {
      it("joins objects in order into a new object, big and small pieces alike", async () => {
        if (!d.concat) return;
        const parts = [
          randomBytes(6 * 1024 * 1024),
          randomBytes(10),
          randomBytes(5 * 1024 * 1024 + 1),
          randomBytes(7),
        ];
        const infos = [];
        for (const [i, part] of parts.entries()) {
          const key = `uploads/conf-concat/p/${String(i).padStart(16, "0")}`;
          await d.put(key, part);
          infos.push((await d.stat(key))!);
        }
        await d.concat("blobs/sha256/conf-concat", infos);
        expectBytes(await readAll(await d.read("blobs/sha256/conf-concat")), Buffer.concat(parts));
        // One source becomes the target.
        await d.put("uploads/conf-one/p/0", Buffer.from("only"));
        await d.concat("blobs/sha256/conf-one", [(await d.stat("uploads/conf-one/p/0"))!]);
        expect((await d.get("blobs/sha256/conf-one"))?.toString()).toBe("only");
      });
    });

    it("sweeps abandoned writes older than a cutoff, and only those", async () => {
      if (!d.sweepAbandoned) return;
      const writer = await d.write("blobs/sha256/conf-sweep");
      writer.stream.write(Buffer.alloc(1000));
      // Still being written: younger than the cutoff, so not swept.
      await d.sweepAbandoned(new Date(Date.now() - 60_000));
      writer.stream.end();
      expect(await writer.done).toBe(true);
      expect((await d.stat("blobs/sha256/conf-sweep"))?.size).toBe(1000);
    });
  });
}

/** A stream that yields `data` in pieces of `size` bytes, as a network body would. */
export function chunked(data: Buffer, size: number): Readable {
  return Readable.from(
    (function* () {
      for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
    })(),
  );
}

/** Buffer comparison without vitest's element-by-element deep equality (slow on megabytes). */
export function expectBytes(got: Buffer, want: Buffer): void {
  expect(got.length).toBe(want.length);
  expect(got.equals(want)).toBe(true);
}

export async function readAll(stream: Readable | null): Promise<Buffer> {
  if (!stream) throw new Error("expected a stream, got null");
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

export async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}
