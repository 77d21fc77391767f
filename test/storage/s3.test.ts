import { randomBytes } from "node:crypto";
import { readdirSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import {
  CreateMultipartUploadCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
} from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CodedError } from "../../common/error-codes.js";
import { S3Driver } from "../../registry/storage/s3-driver.js";
import { S3SocketBody } from "../../registry/storage/s3-socket-get.js";
import { Store } from "../../registry/store/store.js";
import { closedPort, rgwForTests } from "../helpers/rgw.js";
import { chunked, driverConformance } from "./driver-conformance.js";
import { sha, storeSuite } from "./store-suite.js";

// One throwaway Ceph RGW for this file (scripts/rgw); the same suite as the local backend, unchanged.
const rgw = await rgwForTests();

if (rgw) {
  afterAll(() => rgw.stop());
  // Under a key prefix in a fresh bucket: every key must be mapped in and out of the prefix
  // (the registry tests use a bucket root).
  const prefixed = async () => {
    const driver = new S3Driver(rgw.options(await rgw.createBucket(), "some/prefix/"));
    return { driver, cleanup: async () => driver.client.destroy() };
  };
  driverConformance("s3 on Ceph RGW", prefixed);
  storeSuite("s3 on Ceph RGW", prefixed);
  // Blob reads from https endpoints go through the SDK, not the bare socket (s3-socket-get.ts).
  const sdkReads = async () => {
    const driver = new S3Driver(rgw.options(await rgw.createBucket(), "sdk/"), undefined, {
      socketDownloads: false,
    });
    return { driver, cleanup: async () => driver.client.destroy() };
  };
  driverConformance("s3 on Ceph RGW, reads through the SDK", sdkReads);
  storeSuite("s3 on Ceph RGW, reads through the SDK", sdkReads);

  describe("s3 specifics", () => {
    let s: S3Driver;
    let st: Store;
    let bucket: string;
    beforeAll(async () => {
      bucket = await rgw.createBucket();
      s = new S3Driver(rgw.options(bucket, "r/"));
      st = new Store(s, { cacheTtlMs: 0 });
    });
    afterAll(() => s.client.destroy());

    const multipartUploads = async () =>
      (await s.client.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? [];
    const allKeys = async () =>
      ((await s.client.send(new ListObjectsV2Command({ Bucket: bucket }))).Contents ?? []).map(
        (o: { Key?: string }) => o.Key,
      );

    it("refuses a multi-part blob with a wrong digest: no object, no multipart upload left", async () => {
      const data = randomBytes(20 * 1024 * 1024 + 5); // three parts
      const wrong = sha(Buffer.from("not it"));
      const err = await st.blobs.put(wrong, chunked(data, 1 << 16)).catch((e: unknown) => e);
      expect((err as CodedError).code).toBe("DIGEST_INVALID");
      expect(await st.blobs.stat(wrong)).toBeNull();
      expect(await multipartUploads()).toEqual([]);
      expect(await allKeys()).toEqual([]);
      // The right digest goes through, ranges read across part boundaries.
      expect(await st.blobs.put(sha(data), chunked(data, 1 << 16))).toEqual({
        size: data.length,
        created: true,
      });
      const range = await readAll(
        await st.blobs.read(sha(data), { start: (8 << 20) - 3, end: (16 << 20) + 3 }),
      );
      expect(range.equals(data.subarray((8 << 20) - 3, (16 << 20) + 4))).toBe(true);
    });

    it("composes a resumable upload from big and small chunks (part copy and concatenation)", async () => {
      const data = randomBytes(23 * 1024 * 1024 + 123);
      const up = await st.uploads.create("o");
      // 9 MiB (pieces of 8 + 1), then 30 small chunks, then the rest in one go.
      const cuts = [0, 9 << 20];
      for (let i = 1; i <= 30; i++) cuts.push((9 << 20) + i * 20_000);
      cuts.push(data.length);
      for (let i = 0; i + 1 < cuts.length; i++) {
        const state = await st.uploads.append(
          up.id,
          "o",
          cuts[i]!,
          chunked(data.subarray(cuts[i], cuts[i + 1]), 1 << 20),
        );
        expect(state.offset).toBe(cuts[i + 1]);
      }
      const mismatch = await st.uploads.complete(up.id, "o", sha(Buffer.from("x"))).catch((e: unknown) => e);
      expect((mismatch as CodedError).code).toBe("DIGEST_INVALID");
      expect(await multipartUploads()).toEqual([]);
      // A mismatch discards the upload; do it again and complete with the right digest.
      const again = await st.uploads.create("o");
      await st.uploads.append(again.id, "o", 0, chunked(data.subarray(0, 9 << 20), 1 << 20));
      for (let i = 1; i + 1 < cuts.length; i++) {
        await st.uploads.append(
          again.id,
          "o",
          cuts[i]!,
          chunked(data.subarray(cuts[i], cuts[i + 1]), 1 << 20),
        );
      }
      expect(await st.uploads.complete(again.id, "o", sha(data))).toEqual({ size: data.length });
      expect((await readAll(await st.blobs.read(sha(data)))).equals(data)).toBe(true);
      expect((await allKeys()).filter((k: string | undefined) => k?.startsWith("r/uploads/"))).toEqual([]);
      expect(await multipartUploads()).toEqual([]);
    });

    it("lets exactly one of two replicas append at one offset", async () => {
      const up = await st.uploads.create("o");
      const a = new S3Driver(rgw.options(bucket, "r/"));
      const replica = new Store(a, { cacheTtlMs: 0 });
      const results = await Promise.allSettled([
        replica.uploads.append(up.id, "o", 0, Readable.from([Buffer.alloc(1000, 1)])),
        st.uploads.append(up.id, "o", 0, Readable.from([Buffer.alloc(1000, 2)])),
      ]);
      a.client.destroy();
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
      const failed = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
      expect((failed.reason as CodedError).code).toBe("RANGE_INVALID");
      expect((await st.uploads.state(up.id, "o"))?.offset).toBe(1000);
      await st.uploads.abort(up.id, "o");
    });

    it("sweeps abandoned writes (incomplete multipart uploads of a dead writer) older than a cutoff", async () => {
      const key = `r/blobs/sha256/${sha(Buffer.from("orphan"))}`;
      await s.client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
      expect(await s.sweepAbandoned(new Date(Date.now() - 60_000))).toBe(0); // young: kept
      expect(await multipartUploads()).toHaveLength(1);
      expect(await s.sweepAbandoned(new Date(Date.now() + 60_000))).toBe(1);
      expect(await multipartUploads()).toEqual([]);
      expect(await s.sweepAbandoned(new Date(Date.now() + 60_000))).toBe(0);
    });

    it("redirects blob downloads to a presigned URL only when asked to, and the URL serves ranges", async () => {
      const data = randomBytes(100_000);
      await st.blobs.put(sha(data), chunked(data, 10_000));
      expect(await st.blobs.downloadUrl(sha(data))).toBeNull();
      const redirecting = new S3Driver({ ...rgw.options(bucket, "r/"), redirect: true });
      const url = await new Store(redirecting, { cacheTtlMs: 0 }).blobs.downloadUrl(sha(data));
      redirecting.client.destroy();
      expect(url).toMatch(/X-Amz-Signature=/);
      const res = await fetch(url!, { headers: { Range: "bytes=10-19" } });
      expect(res.status).toBe(206);
      expect(Buffer.from(await res.arrayBuffer()).equals(data.subarray(10, 20))).toBe(true);
      const tampered = await fetch(url!.replace(/X-Amz-Signature=[0-9a-f]/, "X-Amz-Signature=Z"));
      expect(tampered.status).toBe(403);
    });

    it("downloads blobs over a bare socket: the SDK's bytes, any range, sockets closed when clients leave", async () => {
      const data = randomBytes(5 * 1024 * 1024 + 4321);
      const hex = sha(data);
      await st.blobs.put(hex, chunked(data, 1024 * 1024));
      const sdkDriver = new S3Driver(rgw.options(bucket, "r/"), undefined, { socketDownloads: false });
      const viaSdk = new Store(sdkDriver, { cacheTtlMs: 0 }).blobs;
      expect(s.socketDownloads).toBe(true);
      expect(await st.blobs.read(hex)).toBeInstanceOf(S3SocketBody);
      expect(await viaSdk.read(hex)).not.toBeInstanceOf(S3SocketBody);
      for (const range of [
        undefined,
        { start: 0, end: 0 },
        { start: 4095, end: 262_144 },
        { start: 1, end: data.length - 1 },
      ]) {
        const expected = range ? data.subarray(range.start, range.end + 1) : data;
        expect((await readAll(await st.blobs.read(hex, range))).equals(expected)).toBe(true);
        expect((await readAll(await viaSdk.read(hex, range))).equals(expected)).toBe(true);
      }
      sdkDriver.client.destroy();
      expect(await st.blobs.read(sha(Buffer.from("absent")))).toBeNull(); // 404: the SDK's answer

      // As the registry sends them: sendTo into the response. Abandoned downloads must close
      // their S3 sockets; the ones after get every byte.
      const server = http.createServer(async (_req, res) => {
        const body = (await st.blobs.read(hex)) as S3SocketBody;
        res.writeHead(200, { "Content-Length": data.length });
        body.sendTo(res, () => {}).catch(() => {});
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
      const sockets = () => readdirSync("/proc/self/fd").length;
      const before = sockets();
      for (let i = 0; i < 20; i++) {
        const controller = new AbortController();
        const res = await fetch(base, { signal: controller.signal });
        await res.body?.getReader().read();
        controller.abort();
      }
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(sockets()).toBeLessThanOrEqual(before + 4);
      const bodies = await Promise.all(
        Array.from({ length: 6 }, () => fetch(base).then((r) => r.arrayBuffer())),
      );
      for (const body of bodies) expect(Buffer.from(body).equals(data)).toBe(true);
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    });

    it("says clearly what is wrong: secret, endpoint, bucket", async () => {
      const wrongSecret = new S3Driver({ ...rgw.options(bucket), secretAccessKey: "not-the-secret" });
      await expect(wrongSecret.check()).rejects.toThrow(/secret access key is wrong/);
      const wrongKey = new S3Driver({ ...rgw.options(bucket), accessKeyId: "NOSUCHKEY" });
      await expect(wrongKey.check()).rejects.toThrow(/unknown access key id/);
      const noBucket = new S3Driver(rgw.options("no-such-bucket-here"));
      await expect(noBucket.check()).rejects.toThrow(/bucket 'no-such-bucket-here' does not exist/);
      const port = await closedPort();
      const unreachable = new S3Driver({ ...rgw.options(bucket), endpoint: `http://127.0.0.1:${port}` });
      await expect(unreachable.check()).rejects.toThrow(/endpoint unreachable \(ECONNREFUSED\)/);
      for (const x of [wrongSecret, wrongKey, noBucket, unreachable]) x.client.destroy();
      await expect(s.check()).resolves.toBeUndefined();
    });
  });
} else {
  describe.skip("storage conformance: s3 (Ceph RGW not available)", () => {
    it("needs scripts/rgw", () => {});
  });
}

async function readAll(stream: Readable | null): Promise<Buffer> {
  if (!stream) throw new Error("expected a stream");
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}
