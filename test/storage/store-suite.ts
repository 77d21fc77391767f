import { createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CodedError } from "../../common/error-codes.js";
import type { StorageDriver } from "../../registry/storage/driver.js";
import { Store } from "../../registry/store/store.js";
import { chunked, expectBytes, readAll } from "./driver-conformance.js";

/**
 * The store's blob and upload logic (registry/store/blobs.ts, uploads.ts) run against every
 * storage driver: digests, offsets and immutability are written once, in the store, and must
 * hold on each backend. Call it from <driver>.test.ts with a factory that gives a fresh driver.
 */
export interface StoreFixture {
  driver: StorageDriver;
  cleanup(): Promise<void>;
}

const OWNER = "owner-a";

function code(err: unknown): string {
  return err instanceof CodedError ? err.code : String(err);
}

export function storeSuite(name: string, make: () => Promise<StoreFixture>): void {
  describe(`store over storage: ${name}`, () => {
    let fixture: StoreFixture;
    let store: Store;
    beforeAll(async () => {
      fixture = await make();
      store = new Store(fixture.driver, { cacheTtlMs: 0 });
    });
    afterAll(async () => {
      await fixture?.cleanup();
    });

    describe("blobs", () => {
      it("stores a blob whose digest matches, stats and reads it back", async () => {
        const data = randomBytes(300_000);
        const hex = sha(data);
        expect(await store.blobs.stat(hex)).toBeNull();
        expect(await store.blobs.read(hex)).toBeNull();
        const result = await store.blobs.put(hex, chunked(data, 7001));
        expect(result).toEqual({ size: data.length, created: true });
        const info = await store.blobs.stat(hex);
        expect(info?.size).toBe(data.length);
        expect(info?.modified).toBeInstanceOf(Date);
        expect(Math.abs(Date.now() - info!.modified.getTime())).toBeLessThan(120_000);
        expectBytes(await readAll(await store.blobs.read(hex)), data);
      });

      it("stores an empty blob", async () => {
        const hex = sha(Buffer.alloc(0));
        expect(await store.blobs.put(hex, Readable.from([]))).toEqual({ size: 0, created: true });
        expect((await store.blobs.stat(hex))?.size).toBe(0);
        expect((await readAll(await store.blobs.read(hex))).length).toBe(0);
      });

      it("answers created=false for a blob it already has, and keeps it intact", async () => {
        const data = randomBytes(1000);
        const hex = sha(data);
        await store.blobs.put(hex, chunked(data, 100));
        expect(await store.blobs.put(hex, chunked(data, 333))).toEqual({ size: 1000, created: false });
        expectBytes(await readAll(await store.blobs.read(hex)), data);
      });

      it("refuses a blob whose bytes do not match its digest and keeps nothing", async () => {
        const data = randomBytes(50_000);
        const wrong = sha(randomBytes(10));
        expect(code(await store.blobs.put(wrong, chunked(data, 4096)).catch((e: unknown) => e))).toBe(
          "DIGEST_INVALID",
        );
        expect(await store.blobs.stat(wrong)).toBeNull();
        expect(await store.blobs.read(wrong)).toBeNull();
        const err = await store.blobs.put(wrong, chunked(data, 4096)).catch((e: unknown) => e);
        expect((err as Error).message).toContain(`expected sha256:${wrong}`);
        expect((err as Error).message).toContain(`got sha256:${sha(data)}`);
        for await (const b of store.blobs.list()) expect(b.hex).not.toBe(wrong);
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
        await expect(store.blobs.put(hex, failing)).rejects.toThrow();
        expect(await store.blobs.stat(hex)).toBeNull();
      });

      it("reads inclusive byte ranges", async () => {
        const data = randomBytes(3 * 1024 * 1024 + 17);
        const hex = sha(data);
        await store.blobs.put(hex, chunked(data, 1 << 20));
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
          const got = await readAll(await store.blobs.read(hex, { start, end }));
          expect(got.equals(data.subarray(start, end + 1)), `range ${start}-${end}`).toBe(true);
        }
      });

      it("lists blobs with sizes and deletes them", async () => {
        const a = randomBytes(111);
        const b = randomBytes(222);
        await store.blobs.put(sha(a), chunked(a, 50));
        await store.blobs.put(sha(b), chunked(b, 50));
        const listed = new Map<string, number>();
        for await (const blob of store.blobs.list()) {
          expect(blob.modified).toBeInstanceOf(Date);
          listed.set(blob.hex, blob.size);
        }
        expect(listed.get(sha(a))).toBe(111);
        expect(listed.get(sha(b))).toBe(222);
        await store.blobs.delete(sha(a));
        expect(await store.blobs.stat(sha(a))).toBeNull();
        expect(await store.blobs.read(sha(a))).toBeNull();
        expect((await store.blobs.stat(sha(b)))?.size).toBe(222);
        await expect(store.blobs.delete(sha(a))).resolves.toBeUndefined(); // deleting twice is fine
      });

      it("stores the same blob from 8 concurrent writers intact", async () => {
        const data = randomBytes(200_000);
        const hex = sha(data);
        const results = await Promise.all(
          Array.from({ length: 8 }, () => store.blobs.put(hex, chunked(data, 9999))),
        );
        expect(results.every((r) => r.size === data.length)).toBe(true);
        expect(results.some((r) => r.created)).toBe(true);
        expectBytes(await readAll(await store.blobs.read(hex)), data);
      });
    });

    describe("resumable uploads", () => {
      it("appends chunks at the offset and completes into a blob", async () => {
        const data = randomBytes(2_500_000);
        const hex = sha(data);
        const up = await store.uploads.create(OWNER);
        expect(up.offset).toBe(0);
        expect(up.started).toBeInstanceOf(Date);
        expect(typeof up.id).toBe("string");
        let state = await store.uploads.append(up.id, OWNER, 0, chunked(data.subarray(0, 1_000_000), 65536));
        expect(state.offset).toBe(1_000_000);
        expect((await store.uploads.state(up.id, OWNER))?.offset).toBe(1_000_000);
        state = await store.uploads.append(up.id, OWNER, 1_000_000, chunked(data.subarray(1_000_000), 65536));
        expect(state.offset).toBe(data.length);
        expect(await store.blobs.stat(hex)).toBeNull(); // nothing visible before completion
        expect(await store.uploads.complete(up.id, OWNER, hex)).toEqual({ size: data.length });
        expectBytes(await readAll(await store.blobs.read(hex)), data);
        expect(await store.uploads.state(up.id, OWNER)).toBeNull(); // a completed upload is gone
        for await (const u of store.uploads.list()) expect(u.id).not.toBe(up.id);
      });

      it("completes through one replica an upload whose chunks came through two", async () => {
        // A replica keeps a running digest of the chunks it stored; chunks stored through
        // another replica make it stale, and completion must then read the bytes back.
        const other = new Store(fixture.driver, { cacheTtlMs: 0 });
        const data = randomBytes(300_000);
        const up = await store.uploads.create(OWNER);
        await store.uploads.append(up.id, OWNER, 0, chunked(data.subarray(0, 100_000), 8192));
        await other.uploads.append(up.id, OWNER, 100_000, chunked(data.subarray(100_000, 200_000), 8192));
        await store.uploads.append(up.id, OWNER, 200_000, chunked(data.subarray(200_000), 8192));
        const wrong = await store.uploads
          .complete(up.id, OWNER, sha(data.subarray(0, 100_000)))
          .catch((e: unknown) => e);
        expect(code(wrong)).toBe("DIGEST_INVALID");

        const again = await store.uploads.create(OWNER);
        await store.uploads.append(again.id, OWNER, 0, chunked(data.subarray(0, 100_000), 8192));
        await other.uploads.append(again.id, OWNER, 100_000, chunked(data.subarray(100_000), 8192));
        expect(await store.uploads.complete(again.id, OWNER, sha(data))).toEqual({ size: data.length });
        expectBytes(await readAll(await store.blobs.read(sha(data))), data);
      });

      it("refuses out-of-order and overlapping chunks without changing the offset", async () => {
        const data = randomBytes(30_000);
        const up = await store.uploads.create(OWNER);
        await store.uploads.append(up.id, OWNER, 0, chunked(data.subarray(0, 10_000), 1000));
        const gap = await store.uploads
          .append(up.id, OWNER, 20_000, chunked(data.subarray(20_000), 1000))
          .catch((e: unknown) => e);
        expect(code(gap)).toBe("RANGE_INVALID");
        expect((gap as CodedError).headers["Upload-Offset"]).toBe("10000");
        expect((gap as CodedError).message).toContain("starts at 20000");
        const overlap = await store.uploads
          .append(up.id, OWNER, 5_000, chunked(data.subarray(5_000), 1000))
          .catch((e: unknown) => e);
        expect(code(overlap)).toBe("RANGE_INVALID");
        expect((await store.uploads.state(up.id, OWNER))?.offset).toBe(10_000);
        await store.uploads.append(up.id, OWNER, 10_000, chunked(data.subarray(10_000), 1000));
        expect(await store.uploads.complete(up.id, OWNER, sha(data))).toEqual({ size: data.length });
        expectBytes(await readAll(await store.blobs.read(sha(data))), data);
      });

      it("keeps the received prefix of a cut chunk so the client can resume", async () => {
        const data = randomBytes(100_000);
        const up = await store.uploads.create(OWNER);
        const cut = Readable.from(
          (async function* () {
            yield data.subarray(0, 40_000);
            throw new Error("connection reset");
          })(),
        );
        await expect(store.uploads.append(up.id, OWNER, 0, cut)).rejects.toThrow();
        const offset = (await store.uploads.state(up.id, OWNER))!.offset;
        expect(offset).toBeGreaterThanOrEqual(0);
        expect(offset).toBeLessThanOrEqual(40_000);
        await store.uploads.append(up.id, OWNER, offset, chunked(data.subarray(offset), 7000));
        expect(await store.uploads.complete(up.id, OWNER, sha(data))).toEqual({ size: data.length });
      });

      it("refuses completion with the wrong digest and publishes nothing", async () => {
        const data = randomBytes(10_000);
        const wrong = sha(Buffer.from("something else"));
        const up = await store.uploads.create(OWNER);
        await store.uploads.append(up.id, OWNER, 0, chunked(data, 1000));
        expect(code(await store.uploads.complete(up.id, OWNER, wrong).catch((e: unknown) => e))).toBe(
          "DIGEST_INVALID",
        );
        expect(await store.blobs.stat(wrong)).toBeNull();
        expect(await store.blobs.stat(sha(data))).toBeNull();
      });

      it("never publishes bytes that do not match the digest, even when two chunks race at one offset", async () => {
        const a = randomBytes(400_000);
        const b = randomBytes(400_000);
        const up = await store.uploads.create(OWNER);
        const results = await Promise.allSettled([
          store.uploads.append(up.id, OWNER, 0, chunked(a, 16_384)),
          store.uploads.append(up.id, OWNER, 0, chunked(b, 16_384)),
        ]);
        expect(results.some((r) => r.status === "fulfilled")).toBe(true);
        const done = await store.uploads.complete(up.id, OWNER, sha(a)).catch((e: unknown) => e);
        if (done instanceof Error) {
          expect(code(done)).toBe("DIGEST_INVALID");
          expect(await store.blobs.stat(sha(a))).toBeNull();
        } else {
          expectBytes(await readAll(await store.blobs.read(sha(a))), a);
        }
      });

      it("aborts uploads and lists the open ones", async () => {
        const a = await store.uploads.create(OWNER);
        const b = await store.uploads.create(OWNER);
        await store.uploads.append(b.id, OWNER, 0, chunked(Buffer.alloc(123), 50));
        const open = new Map<string, number>();
        for await (const u of store.uploads.list()) {
          expect(u.started).toBeInstanceOf(Date);
          open.set(u.id, u.offset);
        }
        expect(open.get(a.id)).toBe(0);
        expect(open.get(b.id)).toBe(123);
        await store.uploads.abort(a.id, OWNER);
        expect(await store.uploads.state(a.id, OWNER)).toBeNull();
        expect(await store.uploads.abort(a.id, OWNER)).toBe(false);
        const append = await store.uploads
          .append(a.id, OWNER, 0, Readable.from([Buffer.from("x")]))
          .catch((e: unknown) => e);
        expect(code(append)).toBe("UPLOAD_UNKNOWN");
        const complete = await store.uploads
          .complete(a.id, OWNER, sha(Buffer.alloc(0)))
          .catch((e: unknown) => e);
        expect(code(complete)).toBe("UPLOAD_UNKNOWN");
        expect((await store.uploads.state(b.id, OWNER))?.offset).toBe(123);
        await store.uploads.abort(b.id, OWNER);
      });

      it("keeps who opened an upload: to any other owner it does not exist", async () => {
        const mine = await store.uploads.create("ab".repeat(32));
        expect(await store.uploads.state(mine.id, OWNER)).toBeNull();
        expect(await store.uploads.state(mine.id, "ab".repeat(32))).toMatchObject({ offset: 0 });
        const append = await store.uploads
          .append(mine.id, OWNER, 0, chunked(Buffer.alloc(10), 5))
          .catch((e: unknown) => e);
        expect(code(append)).toBe("UPLOAD_UNKNOWN");
        expect(await store.uploads.abort(mine.id, OWNER)).toBe(false);
        await store.uploads.append(mine.id, "ab".repeat(32), 0, chunked(Buffer.alloc(10), 5));
        expect(await store.uploads.state(mine.id, "ab".repeat(32))).toMatchObject({ offset: 10 });
        expect(await store.uploads.abort(mine.id, "ab".repeat(32))).toBe(true);
      });

      it("answers null / UPLOAD_UNKNOWN for ids it never issued", async () => {
        for (const id of ["0".repeat(32), "nope", "../blobs", ""]) {
          expect(await store.uploads.state(id, OWNER)).toBeNull();
          const err = await store.uploads
            .append(id, OWNER, 0, Readable.from([Buffer.from("x")]))
            .catch((e: unknown) => e);
          expect(code(err)).toBe("UPLOAD_UNKNOWN");
        }
      });
    });
  });
}

export function sha(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}
