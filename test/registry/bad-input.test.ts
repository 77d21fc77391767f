import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  bearer,
  errorOf,
  makeTemplate,
  sha256,
  startTestRegistry,
  type TestRegistry,
} from "../helpers/registry.js";

/** Every bad input gets the right 4xx with a JSON error, and leaves nothing in storage. */
let r: TestRegistry;
let push: Record<string, string>;
beforeAll(async () => {
  r = await startTestRegistry({ tokens: { push: ["push:*"], pull: ["pull:*"], other: ["push:centos-*"] } });
  push = bearer(r.tokens.push);
});
afterAll(async () => {
  await r?.close();
});

/** All files under the storage directory except in-flight temp areas (which must be empty too). */
async function storedFiles(): Promise<string[]> {
  const out: string[] = [];
  async function walk(dir: string, rel: string) {
    let entries: import("node:fs").Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.isDirectory()) await walk(join(dir, e.name), `${rel}${e.name}/`);
      else out.push(`${rel}${e.name}`);
    }
  }
  await walk(r.storageDir, "");
  return out.sort();
}

async function expectNothingStored(run: () => Promise<Response>, status: number, code: string) {
  const before = await storedFiles();
  const res = await run();
  const err = await errorOf(res);
  expect(err, err.message).toMatchObject({ status, code });
  expect(err.message.length).toBeGreaterThan(5);
  expect(res.headers.get("content-type")).toContain("application/json");
  expect(await storedFiles()).toEqual(before);
}

describe("bad input", () => {
  const t = makeTemplate("debian-13-x86_64", "1.0.0");

  it.each([
    ["..", "a..b"],
    ["/", "a%2Fb"],
    ["NUL", "a%00b"],
    ["upper case", "Debian-13"],
    ["a leading dot", ".hidden"],
    ["too long", "a".repeat(129)],
  ])("refuses a template name with %s", async (_what, name) => {
    const manifest = makeTemplate("debian-13-x86_64", "1.0.0").manifest;
    await expectNothingStored(
      () => fetch(`${r.url}/v1/templates/${name}/1.0.0`, { method: "PUT", headers: push, body: manifest }),
      400,
      "NAME_INVALID",
    );
    const get = await fetch(`${r.url}/v1/templates/${name}/1.0.0`);
    expect((await errorOf(get)).code).toBe("NAME_INVALID");
  });

  it.each(["1.0", "v1.0.0", "01.0.0", "1.0.0+build", "latest", "1.0.0%00"])(
    "refuses version %s in a push",
    async (v) => {
      await expectNothingStored(
        () =>
          fetch(`${r.url}/v1/templates/debian-13-x86_64/${v}`, {
            method: "PUT",
            headers: push,
            body: t.manifest,
          }),
        400,
        "VERSION_INVALID",
      );
    },
  );

  it("refuses a reference that is neither version, tag nor range", async () => {
    const res = await fetch(`${r.url}/v1/templates/debian-13-x86_64/${encodeURIComponent("^^1 ~~")}`);
    expect(await errorOf(res)).toMatchObject({ status: 400, code: "REFERENCE_INVALID" });
  });

  it("refuses a blob whose bytes do not match its digest", async () => {
    const wrong = sha256(Buffer.from("other"));
    await expectNothingStored(
      () =>
        fetch(`${r.url}/v1/blobs/sha256:${wrong}`, {
          method: "PUT",
          headers: push,
          body: Buffer.alloc(100_000, 1),
        }),
      400,
      "DIGEST_INVALID",
    );
  });

  it("refuses a manifest naming a missing blob", async () => {
    await expectNothingStored(
      () =>
        fetch(`${r.url}/v1/templates/debian-13-x86_64/1.0.0`, {
          method: "PUT",
          headers: push,
          body: t.manifest,
        }),
      400,
      "BLOB_UNKNOWN",
    );
  });

  it("refuses a manifest over 1 MiB, announced or not", async () => {
    const big = makeTemplate("debian-13-x86_64", "1.0.0", {
      extra: { description: "x".repeat(1 << 20) },
    }).manifest;
    await expectNothingStored(
      () =>
        fetch(`${r.url}/v1/templates/debian-13-x86_64/1.0.0`, { method: "PUT", headers: push, body: big }),
      413,
      "TOO_LARGE",
    );
    // Chunked, without Content-Length: the limit is enforced while reading.
    const stream = new ReadableStream({
      start(c) {
        c.enqueue(big.subarray(0, 600_000));
        c.enqueue(big.subarray(600_000));
        c.close();
      },
    });
    await expectNothingStored(
      () =>
        fetch(`${r.url}/v1/templates/debian-13-x86_64/1.0.0`, {
          method: "PUT",
          headers: push,
          body: stream,
          duplex: "half",
        } as RequestInit),
      413,
      "TOO_LARGE",
    );
  });

  it("refuses invalid manifests: not JSON, schema errors, name or version not the URL's", async () => {
    const url = `${r.url}/v1/templates/debian-13-x86_64/1.0.0`;
    for (const body of [
      "not json",
      JSON.stringify({ schemaVersion: 2 }),
      makeTemplate("debian-12-x86_64", "1.0.0").manifest.toString(),
      makeTemplate("debian-13-x86_64", "1.0.1").manifest.toString(),
    ]) {
      await expectNothingStored(
        () => fetch(url, { method: "PUT", headers: push, body }),
        400,
        "MANIFEST_INVALID",
      );
    }
  });

  it("refuses manifests whose file-name fields, encoding, nesting or artifacts are unsafe (400 MANIFEST_INVALID)", async () => {
    // The blob is there, so only the manifest itself can be the reason for a refusal.
    const blob = Buffer.alloc(4096, 9);
    const hex = sha256(blob);
    const put = await fetch(`${r.url}/v1/blobs/sha256:${hex}`, { method: "PUT", headers: push, body: blob });
    expect([200, 201]).toContain(put.status);
    const artifact = { format: "tar.gz", digest: `sha256:${hex}`, size: blob.length };
    const manifest = (extra: Record<string, unknown>) =>
      makeTemplate("debian-13-x86_64", "2.0.0", { blobs: [blob], extra: { artifacts: [artifact], ...extra } })
        .manifest;
    // `"description": "<0xff>"`: sound JSON, but not UTF-8.
    const utf8 = manifest({ description: "x" });
    utf8[utf8.indexOf('"x"') + 1] = 0xff;
    const bodies = [
      manifest({ arch: "x/../../../escaped" }),
      manifest({ arch: "x86_64;reboot" }),
      manifest({ distro: "../debian" }),
      manifest({ release: "13 $(id)" }),
      manifest({ flavour: ".minimal" }),
      manifest({ extra: JSON.parse(`${"[".repeat(40)}${"]".repeat(40)}`) }),
      manifest({ artifacts: [artifact, artifact] }),
      utf8,
    ];
    const url = `${r.url}/v1/templates/debian-13-x86_64/2.0.0`;
    for (const body of bodies) {
      await expectNothingStored(
        () => fetch(url, { method: "PUT", headers: push, body }),
        400,
        "MANIFEST_INVALID",
      );
    }
    // The same manifest with sound fields is accepted.
    const good = await fetch(url, { method: "PUT", headers: push, body: manifest({}) });
    expect(good.status, await good.text()).toBe(201);
  });

  it("refuses overlapping and out-of-order Content-Range chunks", async () => {
    const open = await fetch(`${r.url}/v1/uploads`, { method: "POST", headers: push });
    const { id } = (await open.json()) as { id: string };
    const chunk = (range: string, body: Buffer) =>
      fetch(`${r.url}/v1/uploads/${id}`, {
        method: "PATCH",
        headers: { ...push, "content-range": range },
        body,
      });
    expect((await chunk("bytes 0-99/300", Buffer.alloc(100, 1))).status).toBe(202);
    const before = await storedFiles();
    expect(await errorOf(await chunk("bytes 50-149/300", Buffer.alloc(100, 2)))).toMatchObject({
      status: 416,
      code: "RANGE_INVALID",
    });
    expect(await errorOf(await chunk("bytes 200-299/300", Buffer.alloc(100, 3)))).toMatchObject({
      status: 416,
      code: "RANGE_INVALID",
    });
    expect(await errorOf(await chunk("bytes 100-99/300", Buffer.alloc(0)))).toMatchObject({
      status: 400,
      code: "CONTENT_RANGE_INVALID",
    });
    expect(await errorOf(await chunk("bytes 100-399/300", Buffer.alloc(300)))).toMatchObject({
      status: 400,
      code: "CONTENT_RANGE_INVALID",
    });
    expect(await storedFiles()).toEqual(before);
    const state = (await (await fetch(`${r.url}/v1/uploads/${id}`, { headers: push })).json()) as {
      offset: number;
    };
    expect(state.offset).toBe(100);
  });

  it("refuses pushes without a token (401), with a pull-only token (403), with a token for another name (403)", async () => {
    const url = `${r.url}/v1/templates/debian-13-x86_64/1.0.0`;
    const blobUrl = `${r.url}/v1/blobs/sha256:${sha256(t.blobs[0]!)}`;
    await expectNothingStored(() => fetch(blobUrl, { method: "PUT", body: t.blobs[0] }), 401, "UNAUTHORIZED");
    await expectNothingStored(
      () => fetch(blobUrl, { method: "PUT", headers: bearer(r.tokens.pull), body: t.blobs[0] }),
      403,
      "DENIED",
    );
    await expectNothingStored(() => fetch(url, { method: "PUT", body: t.manifest }), 401, "UNAUTHORIZED");
    await expectNothingStored(
      () => fetch(url, { method: "PUT", headers: bearer(r.tokens.pull), body: t.manifest }),
      403,
      "DENIED",
    );
    await expectNothingStored(
      () => fetch(url, { method: "PUT", headers: bearer(r.tokens.other), body: t.manifest }),
      403,
      "DENIED",
    );
    await expectNothingStored(
      () => fetch(url, { method: "PUT", headers: bearer("tmpl_forged"), body: t.manifest }),
      401,
      "UNAUTHORIZED",
    );
    await expectNothingStored(() => fetch(`${r.url}/v1/uploads`, { method: "POST" }), 401, "UNAUTHORIZED");
  });
});
