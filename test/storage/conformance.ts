import { createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DigestMismatchError,
  type Storage,
  UploadNotFoundError,
  UploadOffsetError,
} from "../../registry/storage/storage.js";

/**
 * The one suite every storage backend must pass (DESIGN.md "Storage"), in the spirit of
 * distribution's registry/storage/driver/testsuites. Call it from <backend>.test.ts with a
 * factory that gives a fresh, empty storage and a cleanup; tests within a suite share one
 * storage, so each uses its own keys.
 */
export interface StorageFixture {
  storage: Storage;
  cleanup(): Promise<void>;
}

export function storageConformance(name: string, make: () => Promise<StorageFixture>): void {
  describe(`storage conformance: ${name}`, () => {
    let fixture: StorageFixture;
    let s: Storage;
    beforeAll(async () => {
      fixture = await make();
      s = fixture.storage;
    });
    afterAll(async () => {
      await fixture?.cleanup();
    });

    it("is ready", async () => {
      await expect(s.check()).resolves.toBeUndefined();
      expect(typeof s.kind).toBe("string");
    });

    describe("blobs", () => {
      it("stores a blob whose digest matches, stats and reads it back", async () => {
        const data = randomBytes(300_000);
        const hex = sha(data);
        expect(await s.statBlob(hex)).toBeNull();
        expect(await s.readBlob(hex)).toBeNull();
        const result = await s.putBlob(hex, chunked(data, 7001));
        expect(result).toEqual({ size: data.length, created: true });
        const info = await s.statBlob(hex);
        expect(info?.size).toBe(data.length);
        expect(info?.modified).toBeInstanceOf(Date);
        expect(Math.abs(Date.now() - info!.modified.getTime())).toBeLessThan(120_000);
        expectBytes(await readAll(await s.readBlob(hex)), data);
      });

      it("stores an empty blob", async () => {
        const hex = sha(Buffer.alloc(0));
        expect(await s.putBlob(hex, Readable.from([]))).toEqual({ size: 0, created: true });
        expect((await s.statBlob(hex))?.size).toBe(0);
        expect((await readAll(await s.readBlob(hex))).length).toBe(0);
      });

      it("answers created=false for a blob it already has, and keeps it intact", async () => {
        const data = randomBytes(1000);
        const hex = sha(data);
        await s.putBlob(hex, chunked(data, 100));
        expect(await s.putBlob(hex, chunked(data, 333))).toEqual({ size: 1000, created: false });
        expectBytes(await readAll(await s.readBlob(hex)), data);
      });

      it("refuses a blob whose bytes do not match its digest and keeps nothing", async () => {
        const data = randomBytes(50_000);
        const wrong = sha(randomBytes(10));
        await expect(s.putBlob(wrong, chunked(data, 4096))).rejects.toBeInstanceOf(DigestMismatchError);
        expect(await s.statBlob(wrong)).toBeNull();
        expect(await s.readBlob(wrong)).toBeNull();
        const err = await s.putBlob(wrong, chunked(data, 4096)).catch((e: unknown) => e);
        expect((err as DigestMismatchError).expected).toBe(wrong);
        expect((err as DigestMismatchError).actual).toBe(sha(data));
        for await (const b of s.listBlobs()) expect(b.hex).not.toBe(wrong);
      });

      it("keeps nothing when the body stream fails midway", async () => {
        const data = randomBytes(20_000);
        const hex = sha(data);
        const failing = Readable.from(
          (async function* () {
            yield data.subarray(0, 5000);
            throw new Error("connection reset");
          })(),
        );
        await expect(s.putBlob(hex, failing)).rejects.toThrow();
        expect(await s.statBlob(hex)).toBeNull();
      });

      it("reads inclusive byte ranges", async () => {
        const data = randomBytes(3 * 1024 * 1024 + 17);
        const hex = sha(data);
        await s.putBlob(hex, chunked(data, 1 << 20));
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
          const got = await readAll(await s.readBlob(hex, { start, end }));
          expect(got.equals(data.subarray(start, end + 1)), `range ${start}-${end}`).toBe(true);
        }
      });

      it("lists blobs with sizes and deletes them", async () => {
        const a = randomBytes(111);
        const b = randomBytes(222);
        await s.putBlob(sha(a), chunked(a, 50));
        await s.putBlob(sha(b), chunked(b, 50));
        const listed = new Map<string, number>();
        for await (const blob of s.listBlobs()) {
          expect(blob.modified).toBeInstanceOf(Date);
          listed.set(blob.hex, blob.size);
        }
        expect(listed.get(sha(a))).toBe(111);
        expect(listed.get(sha(b))).toBe(222);
        await s.deleteBlob(sha(a));
        expect(await s.statBlob(sha(a))).toBeNull();
        expect(await s.readBlob(sha(a))).toBeNull();
        expect((await s.statBlob(sha(b)))?.size).toBe(222);
        await expect(s.deleteBlob(sha(a))).resolves.toBeUndefined(); // deleting twice is fine
      });

      it("stores the same blob from 8 concurrent writers intact", async () => {
        const data = randomBytes(200_000);
        const hex = sha(data);
        const results = await Promise.all(
          Array.from({ length: 8 }, () => s.putBlob(hex, chunked(data, 9999))),
        );
        expect(results.every((r) => r.size === data.length)).toBe(true);
        expect(results.some((r) => r.created)).toBe(true);
        expectBytes(await readAll(await s.readBlob(hex)), data);
      });
    });

    describe("objects", () => {
      it("creates if absent, exactly once", async () => {
        const key = "templates/conf-a/versions/1.0.0.json";
        expect(await s.getObject(key)).toBeNull();
        expect(await s.statObject(key)).toBeNull();
        expect(await s.putObjectIfAbsent(key, Buffer.from("first"))).toBe(true);
        expect(await s.putObjectIfAbsent(key, Buffer.from("second"))).toBe(false);
        expect((await s.getObject(key))?.toString()).toBe("first");
        const info = await s.statObject(key);
        expect(info).toMatchObject({ key, size: 5 });
        expect(info?.modified).toBeInstanceOf(Date);
      });

      it("has exactly one winner among 50 concurrent create-if-absent writers", async () => {
        const key = "templates/conf-race/versions/2.0.0.json";
        const bodies = Array.from({ length: 50 }, (_, i) =>
          Buffer.from(`writer ${i} ${"x".repeat(i * 100)}`),
        );
        const won = await Promise.all(bodies.map((b) => s.putObjectIfAbsent(key, b)));
        expect(won.filter(Boolean)).toHaveLength(1);
        const winner = bodies[won.indexOf(true)]!;
        expect((await s.getObject(key))?.equals(winner)).toBe(true);
      });

      it("replaces atomically: concurrent readers see old or new bytes, never a mix", async () => {
        const key = "templates/conf-b/tags/latest";
        const old = Buffer.alloc(64 * 1024, "a");
        const next = Buffer.alloc(64 * 1024, "b");
        await s.putObject(key, old);
        const reads: Promise<Buffer | null>[] = [];
        const writes: Promise<void>[] = [];
        for (let i = 0; i < 20; i++) {
          writes.push(s.putObject(key, i % 2 ? old : next));
          reads.push(s.getObject(key));
        }
        await Promise.all(writes);
        for (const r of await Promise.all(reads)) {
          expect(r === null ? "null" : r.equals(old) || r.equals(next) ? "ok" : "mixed").toBe("ok");
        }
        await s.putObject(key, Buffer.from("1.2.3"));
        expect((await s.getObject(key))?.toString()).toBe("1.2.3");
      });

      it("deletes objects (and deleting a missing one is fine)", async () => {
        const key = "templates/conf-c/tags/stable";
        await s.putObject(key, Buffer.from("x"));
        await s.deleteObject(key);
        expect(await s.getObject(key)).toBeNull();
        expect(await s.statObject(key)).toBeNull();
        await expect(s.deleteObject(key)).resolves.toBeUndefined();
        // A deleted create-if-absent key can be created again.
        expect(await s.putObjectIfAbsent(key, Buffer.from("y"))).toBe(true);
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
        for (const [i, key] of keys.entries()) await s.putObject(key, Buffer.alloc(i + 1));
        const under = await collect(s.list("templates/conf-list/"));
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
        const partial = (await collect(s.list("templates/conf-lis"))).map((o) => o.key);
        expect(partial).toEqual([
          "templates/conf-list.x/versions/1.0.0.json",
          ...under.map((o) => o.key),
          "templates/conf-lisz/versions/1.0.0.json",
        ]);
        expect(await collect(s.list("templates/conf-nothing/"))).toEqual([]);
        // Blobs and uploads are not objects under templates/.
        for (const o of await collect(s.list("templates/")))
          expect(o.key.startsWith("templates/")).toBe(true);
      });

      it("lists 1,100 keys under one prefix completely (more than one S3 page)", async () => {
        const prefix = "templates/conf-many/versions/";
        const want: string[] = [];
        for (let i = 0; i < 1100; i++) want.push(`${prefix}${i}.0.0.json`);
        for (let i = 0; i < want.length; i += 100) {
          await Promise.all(want.slice(i, i + 100).map((k) => s.putObject(k, Buffer.from("{}"))));
        }
        const got = (await collect(s.list(prefix))).map((o) => o.key);
        expect(got).toEqual([...want].sort());
      });
    });

    describe("resumable uploads", () => {
      it("appends chunks at the offset and completes into a blob", async () => {
        const data = randomBytes(2_500_000);
        const hex = sha(data);
        const up = await s.createUpload();
        expect(up.offset).toBe(0);
        expect(up.started).toBeInstanceOf(Date);
        expect(typeof up.id).toBe("string");
        let state = await s.appendUpload(up.id, 0, chunked(data.subarray(0, 1_000_000), 65536));
        expect(state.offset).toBe(1_000_000);
        expect((await s.uploadState(up.id))?.offset).toBe(1_000_000);
        state = await s.appendUpload(up.id, 1_000_000, chunked(data.subarray(1_000_000), 65536));
        expect(state.offset).toBe(data.length);
        expect(await s.statBlob(hex)).toBeNull(); // nothing visible before completion
        expect(await s.completeUpload(up.id, hex)).toEqual({ size: data.length });
        expectBytes(await readAll(await s.readBlob(hex)), data);
        expect(await s.uploadState(up.id)).toBeNull(); // a completed upload is gone
        for await (const u of s.listUploads()) expect(u.id).not.toBe(up.id);
      });

      it("refuses out-of-order and overlapping chunks without changing the offset", async () => {
        const data = randomBytes(30_000);
        const up = await s.createUpload();
        await s.appendUpload(up.id, 0, chunked(data.subarray(0, 10_000), 1000));
        const gap = await s.appendUpload(up.id, 20_000, chunked(data.subarray(20_000), 1000)).catch((e) => e);
        expect(gap).toBeInstanceOf(UploadOffsetError);
        expect((gap as UploadOffsetError).expected).toBe(10_000);
        expect((gap as UploadOffsetError).got).toBe(20_000);
        const overlap = await s
          .appendUpload(up.id, 5_000, chunked(data.subarray(5_000), 1000))
          .catch((e) => e);
        expect(overlap).toBeInstanceOf(UploadOffsetError);
        expect((await s.uploadState(up.id))?.offset).toBe(10_000);
        await s.appendUpload(up.id, 10_000, chunked(data.subarray(10_000), 1000));
        expect(await s.completeUpload(up.id, sha(data))).toEqual({ size: data.length });
        expectBytes(await readAll(await s.readBlob(sha(data))), data);
      });

      it("keeps the received prefix of a cut chunk so the client can resume", async () => {
        const data = randomBytes(100_000);
        const up = await s.createUpload();
        const cut = Readable.from(
          (async function* () {
            yield data.subarray(0, 40_000);
            throw new Error("connection reset");
          })(),
        );
        await expect(s.appendUpload(up.id, 0, cut)).rejects.toThrow();
        const offset = (await s.uploadState(up.id))!.offset;
        expect(offset).toBeGreaterThanOrEqual(0);
        expect(offset).toBeLessThanOrEqual(40_000);
        await s.appendUpload(up.id, offset, chunked(data.subarray(offset), 7000));
        expect(await s.completeUpload(up.id, sha(data))).toEqual({ size: data.length });
      });

      it("refuses completion with the wrong digest and publishes nothing", async () => {
        const data = randomBytes(10_000);
        const wrong = sha(Buffer.from("something else"));
        const up = await s.createUpload();
        await s.appendUpload(up.id, 0, chunked(data, 1000));
        await expect(s.completeUpload(up.id, wrong)).rejects.toBeInstanceOf(DigestMismatchError);
        expect(await s.statBlob(wrong)).toBeNull();
        expect(await s.statBlob(sha(data))).toBeNull();
      });

      it("never publishes bytes that do not match the digest, even when two chunks race at one offset", async () => {
        const a = randomBytes(400_000);
        const b = randomBytes(400_000);
        const up = await s.createUpload();
        const results = await Promise.allSettled([
          s.appendUpload(up.id, 0, chunked(a, 16_384)),
          s.appendUpload(up.id, 0, chunked(b, 16_384)),
        ]);
        expect(results.some((r) => r.status === "fulfilled")).toBe(true);
        const done = await s.completeUpload(up.id, sha(a)).catch((e: unknown) => e);
        if (done instanceof Error) {
          expect(done).toBeInstanceOf(DigestMismatchError);
          expect(await s.statBlob(sha(a))).toBeNull();
        } else {
          expectBytes(await readAll(await s.readBlob(sha(a))), a);
        }
      });

      it("aborts uploads and lists the open ones", async () => {
        const a = await s.createUpload();
        const b = await s.createUpload();
        await s.appendUpload(b.id, 0, chunked(Buffer.alloc(123), 50));
        const open = new Map<string, number>();
        for await (const u of s.listUploads()) {
          expect(u.started).toBeInstanceOf(Date);
          open.set(u.id, u.offset);
        }
        expect(open.get(a.id)).toBe(0);
        expect(open.get(b.id)).toBe(123);
        await s.abortUpload(a.id);
        expect(await s.uploadState(a.id)).toBeNull();
        await expect(s.abortUpload(a.id)).resolves.toBeUndefined();
        await expect(s.appendUpload(a.id, 0, Readable.from([Buffer.from("x")]))).rejects.toBeInstanceOf(
          UploadNotFoundError,
        );
        await expect(s.completeUpload(a.id, sha(Buffer.alloc(0)))).rejects.toBeInstanceOf(
          UploadNotFoundError,
        );
        expect((await s.uploadState(b.id))?.offset).toBe(123);
        await s.abortUpload(b.id);
      });

      it("keeps who opened an upload, for every replica to check", async () => {
        const owner = "ab".repeat(32);
        const mine = await s.createUpload(owner);
        const nobody = await s.createUpload();
        expect(mine.owner).toBe(owner);
        expect((await s.uploadState(mine.id))?.owner).toBe(owner);
        await s.appendUpload(mine.id, 0, chunked(Buffer.alloc(10), 5));
        expect(await s.uploadState(mine.id)).toMatchObject({ offset: 10, owner });
        expect((await s.uploadState(nobody.id))?.owner ?? null).toBeNull();
        await s.abortUpload(mine.id);
        await s.abortUpload(nobody.id);
      });

      it("answers null / UploadNotFoundError for ids it never issued", async () => {
        for (const id of ["0".repeat(32), "nope", "../blobs", ""]) {
          expect(await s.uploadState(id)).toBeNull();
          await expect(s.appendUpload(id, 0, Readable.from([Buffer.from("x")]))).rejects.toBeInstanceOf(
            UploadNotFoundError,
          );
        }
      });
    });
  });
}

export function sha(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
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
function expectBytes(got: Buffer, want: Buffer): void {
  expect(got.length).toBe(want.length);
  expect(got.equals(want)).toBe(true);
}

async function readAll(stream: Readable | null): Promise<Buffer> {
  if (!stream) throw new Error("expected a stream, got null");
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}
