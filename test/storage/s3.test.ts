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
import { S3Storage } from "../../registry/storage/s3.js";
import { S3SocketBody } from "../../registry/storage/s3-socket-get.js";
import { DigestMismatchError, UploadOffsetError } from "../../registry/storage/storage.js";
import { closedPort, rgwForTests } from "../helpers/rgw.js";
import { chunked, sha, storageConformance } from "./conformance.js";

// One throwaway Ceph RGW for this file (scripts/rgw); the same suite as the local backend, unchanged.
const rgw = await rgwForTests();

if (rgw) {
  afterAll(() => rgw.stop());
  // Under a key prefix in a fresh bucket: every key must be mapped in and out of the prefix
  // (the registry tests use a bucket root).
  storageConformance("s3 on Ceph RGW", async () => {
    const storage = new S3Storage(rgw.options(await rgw.createBucket(), "some/prefix/"));
    return { storage, cleanup: async () => storage.client.destroy() };
  });
  // Blob reads from https endpoints go through the SDK, not the bare socket (s3-socket-get.ts).
  storageConformance("s3 on Ceph RGW, blob reads through the SDK", async () => {
    const options = rgw.options(await rgw.createBucket(), "sdk/");
    const storage = new S3Storage(options, undefined, { socketDownloads: false });
    return { storage, cleanup: async () => storage.client.destroy() };
  });

  describe("s3 specifics", () => {
    let s: S3Storage;
    let bucket: string;
    beforeAll(async () => {
      bucket = await rgw.createBucket();
      s = new S3Storage(rgw.options(bucket, "r/"));
    });
    afterAll(() => s.client.destroy());

    const multipartUploads = async () =>
      (await s.client.send(new ListMultipartUploadsCommand({ Bucket: bucket }))).Uploads ?? [];
    const allKeys = async () =>
      ((await s.client.send(new ListObjectsV2Command({ Bucket: bucket }))).Contents ?? []).map((o) => o.Key);

    it("refuses a multi-part blob with a wrong digest: no object, no multipart upload left", async () => {
      const data = randomBytes(20 * 1024 * 1024 + 5); // three parts
      const wrong = sha(Buffer.from("not it"));
      const err = await s.putBlob(wrong, chunked(data, 1 << 16)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DigestMismatchError);
      expect(await s.statBlob(wrong)).toBeNull();
      expect(await multipartUploads()).toEqual([]);
      expect(await allKeys()).toEqual([]);
      // The right digest goes through, ranges read across part boundaries.
      expect(await s.putBlob(sha(data), chunked(data, 1 << 16))).toEqual({
        size: data.length,
        created: true,
      });
      const range = await readAll(await s.readBlob(sha(data), { start: (8 << 20) - 3, end: (16 << 20) + 3 }));
      expect(range.equals(data.subarray((8 << 20) - 3, (16 << 20) + 4))).toBe(true);
    });

    it("composes a resumable upload from big and small chunks (part copy and concatenation)", async () => {
      const data = randomBytes(23 * 1024 * 1024 + 123);
      const up = await s.createUpload();
      // 9 MiB (pieces of 8 + 1), then 30 small chunks, then the rest in one go.
      const cuts = [0, 9 << 20];
      for (let i = 1; i <= 30; i++) cuts.push((9 << 20) + i * 20_000);
      cuts.push(data.length);
      for (let i = 0; i + 1 < cuts.length; i++) {
        const state = await s.appendUpload(
          up.id,
          cuts[i]!,
          chunked(data.subarray(cuts[i], cuts[i + 1]), 1 << 20),
        );
        expect(state.offset).toBe(cuts[i + 1]);
      }
      await expect(s.completeUpload(up.id, sha(Buffer.from("x")))).rejects.toBeInstanceOf(
        DigestMismatchError,
      );
      expect(await multipartUploads()).toEqual([]);
      // A mismatch discards the upload; do it again and complete with the right digest.
      const again = await s.createUpload();
      await s.appendUpload(again.id, 0, chunked(data.subarray(0, 9 << 20), 1 << 20));
      for (let i = 1; i + 1 < cuts.length; i++) {
        await s.appendUpload(again.id, cuts[i]!, chunked(data.subarray(cuts[i], cuts[i + 1]), 1 << 20));
      }
      expect(await s.completeUpload(again.id, sha(data))).toEqual({ size: data.length });
      expect((await readAll(await s.readBlob(sha(data)))).equals(data)).toBe(true);
      expect((await allKeys()).filter((k) => k?.startsWith("r/uploads/"))).toEqual([]);
      expect(await multipartUploads()).toEqual([]);
    });

    it("lets exactly one of two replicas append at one offset", async () => {
      const up = await s.createUpload();
      const a = new S3Storage(rgw.options(bucket, "r/"));
      const results = await Promise.allSettled([
        a.appendUpload(up.id, 0, Readable.from([Buffer.alloc(1000, 1)])),
        s.appendUpload(up.id, 0, Readable.from([Buffer.alloc(1000, 2)])),
      ]);
      a.client.destroy();
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
      const failed = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
      expect(failed.reason).toBeInstanceOf(UploadOffsetError);
      expect((await s.uploadState(up.id))?.offset).toBe(1000);
      await s.abortUpload(up.id);
    });

    it("lists and aborts partial writes (incomplete multipart uploads of a dead writer)", async () => {
      const key = `r/blobs/sha256/${sha(Buffer.from("orphan"))}`;
      await s.client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
      const partial = [];
      for await (const p of s.listPartialWrites()) partial.push(p);
      expect(partial).toHaveLength(1);
      expect(partial[0]!.started).toBeInstanceOf(Date);
      await s.abortPartialWrite(partial[0]!.id);
      expect(await multipartUploads()).toEqual([]);
      await expect(s.abortPartialWrite(partial[0]!.id)).resolves.toBeUndefined();
    });

    it("redirects blob downloads to a presigned URL only when asked to, and the URL serves ranges", async () => {
      const data = randomBytes(100_000);
      await s.putBlob(sha(data), chunked(data, 10_000));
      expect(await s.blobRedirectUrl(sha(data))).toBeNull();
      const redirecting = new S3Storage({ ...rgw.options(bucket, "r/"), redirect: true });
      const url = await redirecting.blobRedirectUrl(sha(data));
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
      await s.putBlob(hex, chunked(data, 1024 * 1024));
      const viaSdk = new S3Storage(rgw.options(bucket, "r/"), undefined, { socketDownloads: false });
      expect(s.socketDownloads).toBe(true);
      expect(await s.readBlob(hex)).toBeInstanceOf(S3SocketBody);
      expect(await viaSdk.readBlob(hex)).not.toBeInstanceOf(S3SocketBody);
      for (const range of [
        undefined,
        { start: 0, end: 0 },
        { start: 4095, end: 262_144 },
        { start: 1, end: data.length - 1 },
      ]) {
        const expected = range ? data.subarray(range.start, range.end + 1) : data;
        expect((await readAll(await s.readBlob(hex, range))).equals(expected)).toBe(true);
        expect((await readAll(await viaSdk.readBlob(hex, range))).equals(expected)).toBe(true);
      }
      viaSdk.client.destroy();
      expect(await s.readBlob(sha(Buffer.from("absent")))).toBeNull(); // 404: the SDK's answer

      // As the registry sends them: sendTo into the response. Abandoned downloads must close
      // their S3 sockets; the ones after get every byte.
      const server = http.createServer(async (_req, res) => {
        const body = (await s.readBlob(hex)) as S3SocketBody;
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
      const wrongSecret = new S3Storage({ ...rgw.options(bucket), secretAccessKey: "not-the-secret" });
      await expect(wrongSecret.check()).rejects.toThrow(/secret access key is wrong/);
      const wrongKey = new S3Storage({ ...rgw.options(bucket), accessKeyId: "NOSUCHKEY" });
      await expect(wrongKey.check()).rejects.toThrow(/unknown access key id/);
      const noBucket = new S3Storage(rgw.options("no-such-bucket-here"));
      await expect(noBucket.check()).rejects.toThrow(/bucket 'no-such-bucket-here' does not exist/);
      const port = await closedPort();
      const unreachable = new S3Storage({ ...rgw.options(bucket), endpoint: `http://127.0.0.1:${port}` });
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
