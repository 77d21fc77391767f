import { randomBytes } from "node:crypto";
import * as openpgp from "openpgp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateSigningKey } from "../../common/signing/keys.js";
import { signBytes } from "../../common/signing/signatures.js";
import {
  bearer,
  errorOf,
  makeTemplate,
  pushTemplate,
  sha256,
  startTestRegistry,
  type TestRegistry,
} from "../helpers/registry.js";

let r: TestRegistry;
let push: Record<string, string>;
beforeAll(async () => {
  r = await startTestRegistry();
  push = bearer(r.tokens.push);
});
afterAll(async () => {
  await r?.close();
});

describe("blobs", () => {
  const data = randomBytes(3 * 1024 * 1024 + 5);
  const hex = sha256(data);
  const url = () => `${r.url}/v1/blobs/sha256:${hex}`;
  const etag = `"sha256:${hex}"`;

  it("monolithic PUT: 201, then 200 for a blob already there", async () => {
    const first = await fetch(url(), { method: "PUT", headers: push, body: data });
    expect(first.status).toBe(201);
    expect(first.headers.get("location")).toBe(`/v1/blobs/sha256:${hex}`);
    expect(await first.json()).toEqual({ digest: `sha256:${hex}`, size: data.length });
    const again = await fetch(url(), { method: "PUT", headers: push, body: data });
    expect(again.status).toBe(200);
  });

  it("HEAD answers length, ETag and Accept-Ranges without a body", async () => {
    const res = await fetch(url(), { method: "HEAD" });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-length")).toBe(String(data.length));
    expect(res.headers.get("accept-ranges")).toBe("bytes");
    expect(res.headers.get("etag")).toBe(etag);
    expect((await res.arrayBuffer()).byteLength).toBe(0);
  });

  it("GET streams the whole blob", async () => {
    const res = await fetch(url());
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(data)).toBe(true);
  });

  it("answers ranges with 206 and Content-Range", async () => {
    const cases: [string, number, number][] = [
      ["bytes=0-0", 0, 0],
      ["bytes=100-1999999", 100, 1999999],
      [`bytes=${data.length - 10}-`, data.length - 10, data.length - 1],
      ["bytes=-7", data.length - 7, data.length - 1],
      [`bytes=5-${data.length + 100}`, 5, data.length - 1],
    ];
    for (const [range, start, end] of cases) {
      const res = await fetch(url(), { headers: { range } });
      expect(res.status, range).toBe(206);
      expect(res.headers.get("content-range")).toBe(`bytes ${start}-${end}/${data.length}`);
      expect(res.headers.get("content-length")).toBe(String(end - start + 1));
      expect(Buffer.from(await res.arrayBuffer()).equals(data.subarray(start, end + 1)), range).toBe(true);
    }
  });

  it("answers 416 for a range past the end", async () => {
    const res = await fetch(url(), { headers: { range: `bytes=${data.length}-` } });
    expect(res.status).toBe(416);
    expect(res.headers.get("content-range")).toBe(`bytes */${data.length}`);
    expect((await errorOf(res)).code).toBe("RANGE_INVALID");
  });

  it("honours If-None-Match and If-Range", async () => {
    const notModified = await fetch(url(), { headers: { "if-none-match": etag } });
    expect(notModified.status).toBe(304);
    const other = await fetch(url(), { headers: { "if-none-match": '"sha256:00"' }, method: "HEAD" });
    expect(other.status).toBe(200);
    const resume = await fetch(url(), { headers: { range: "bytes=10-19", "if-range": etag } });
    expect(resume.status).toBe(206);
    expect(Buffer.from(await resume.arrayBuffer()).equals(data.subarray(10, 20))).toBe(true);
    const changed = await fetch(url(), { headers: { range: "bytes=10-19", "if-range": '"sha256:other"' } });
    expect(changed.status).toBe(200);
    expect(changed.headers.get("content-length")).toBe(String(data.length));
    await changed.body?.cancel();
    const lastModified = (await fetch(url(), { method: "HEAD" })).headers.get("last-modified")!;
    const byDate = await fetch(url(), { headers: { range: "bytes=0-3", "if-range": lastModified } });
    expect(byDate.status).toBe(206);
    await byDate.arrayBuffer();
    const olderDate = new Date(Date.parse(lastModified) - 60_000).toUTCString();
    const stale = await fetch(url(), {
      headers: { range: "bytes=0-3", "if-range": olderDate },
      method: "HEAD",
    });
    expect(stale.status).toBe(200);
  });

  it("answers 404 for an unknown blob and 400 for a malformed digest", async () => {
    const missing = await fetch(`${r.url}/v1/blobs/sha256:${"0".repeat(64)}`);
    expect(await errorOf(missing)).toMatchObject({ status: 404, code: "BLOB_UNKNOWN" });
    const bad = await fetch(`${r.url}/v1/blobs/md5:abc`);
    expect(await errorOf(bad)).toMatchObject({ status: 400, code: "DIGEST_INVALID" });
  });
});

describe("resumable uploads", () => {
  const data = randomBytes(1_000_000);
  const hex = sha256(data);

  async function open(): Promise<string> {
    const res = await fetch(`${r.url}/v1/uploads`, { method: "POST", headers: push });
    expect(res.status).toBe(202);
    const body = (await res.json()) as { id: string; offset: number };
    expect(body.offset).toBe(0);
    expect(res.headers.get("location")).toBe(`/v1/uploads/${body.id}`);
    return body.id;
  }
  const patch = (id: string, start: number, end: number, chunk = data.subarray(start, end + 1)) =>
    fetch(`${r.url}/v1/uploads/${id}`, {
      method: "PATCH",
      headers: { ...push, "content-range": `bytes ${start}-${end}/${data.length}` },
      body: chunk,
    });

  it("takes chunks, tells the offset, refuses gaps and overlaps, completes with the digest", async () => {
    const id = await open();
    const first = await patch(id, 0, 399_999);
    expect(first.status).toBe(202);
    expect(first.headers.get("upload-offset")).toBe("400000");

    const status = await fetch(`${r.url}/v1/uploads/${id}`, { headers: push });
    expect(status.status).toBe(200);
    expect(((await status.json()) as { offset: number }).offset).toBe(400_000);

    const gap = await patch(id, 500_000, 599_999);
    expect(await errorOf(gap)).toMatchObject({ status: 416, code: "RANGE_INVALID" });
    expect(gap.headers.get("upload-offset")).toBe("400000");
    const overlap = await patch(id, 300_000, 499_999);
    expect(await errorOf(overlap)).toMatchObject({ status: 416, code: "RANGE_INVALID" });
    const malformed = await fetch(`${r.url}/v1/uploads/${id}`, {
      method: "PATCH",
      headers: { ...push, "content-range": "bytes 10-5/100" },
      body: "x",
    });
    expect(await errorOf(malformed)).toMatchObject({ status: 400, code: "CONTENT_RANGE_INVALID" });
    const lying = await fetch(`${r.url}/v1/uploads/${id}`, {
      method: "PATCH",
      headers: { ...push, "content-range": "bytes 400000-400009/1000000" },
      body: Buffer.alloc(20),
    });
    expect(await errorOf(lying)).toMatchObject({ status: 400, code: "CONTENT_RANGE_INVALID" });
    const after = (await (await fetch(`${r.url}/v1/uploads/${id}`, { headers: push })).json()) as {
      offset: number;
    };
    expect(after.offset).toBe(400_000);

    expect((await patch(id, 400_000, 899_999)).status).toBe(202);
    expect((await fetch(`${r.url}/v1/blobs/sha256:${hex}`, { method: "HEAD" })).status).toBe(404);
    const done = await fetch(`${r.url}/v1/uploads/${id}?digest=sha256:${hex}`, {
      method: "PUT",
      headers: { ...push, "content-range": `bytes 900000-999999/${data.length}` },
      body: data.subarray(900_000),
    });
    expect(done.status).toBe(201);
    expect(done.headers.get("location")).toBe(`/v1/blobs/sha256:${hex}`);
    const blob = await fetch(`${r.url}/v1/blobs/sha256:${hex}`);
    expect(Buffer.from(await blob.arrayBuffer()).equals(data)).toBe(true);
    expect((await fetch(`${r.url}/v1/uploads/${id}`, { headers: push })).status).toBe(404);
  });

  it("refuses completion with the wrong digest, keeping nothing", async () => {
    const id = await open();
    const other = randomBytes(1000);
    expect(
      (await fetch(`${r.url}/v1/uploads/${id}`, { method: "PATCH", headers: push, body: other })).status,
    ).toBe(202);
    const wrong = sha256(Buffer.from("not this"));
    const res = await fetch(`${r.url}/v1/uploads/${id}?digest=sha256:${wrong}`, {
      method: "PUT",
      headers: push,
    });
    expect(await errorOf(res)).toMatchObject({ status: 400, code: "DIGEST_INVALID" });
    expect((await fetch(`${r.url}/v1/blobs/sha256:${wrong}`, { method: "HEAD" })).status).toBe(404);
    expect((await fetch(`${r.url}/v1/blobs/sha256:${sha256(other)}`, { method: "HEAD" })).status).toBe(404);
    const noDigest = await fetch(`${r.url}/v1/uploads/${id}`, { method: "PUT", headers: push });
    expect(await errorOf(noDigest)).toMatchObject({ status: 400, code: "DIGEST_INVALID" });
  });

  it("deletes an upload; unknown ids are 404", async () => {
    const id = await open();
    expect((await fetch(`${r.url}/v1/uploads/${id}`, { method: "DELETE", headers: push })).status).toBe(204);
    expect((await fetch(`${r.url}/v1/uploads/${id}`, { headers: push })).status).toBe(404);
    const unknown = await fetch(`${r.url}/v1/uploads/${"a".repeat(32)}`, {
      method: "PATCH",
      headers: push,
      body: "x",
    });
    expect(await errorOf(unknown)).toMatchObject({ status: 404, code: "UPLOAD_UNKNOWN" });
  });
});

describe("manifests, tags, versions", () => {
  const name = "debian-13-x86_64-routes";
  const v1 = makeTemplate(name, "1.0.0");
  const v11 = makeTemplate(name, "1.1.0");
  const v2rc = makeTemplate(name, "2.0.0-rc.1");

  it("pushes: 201 new, 200 identical again, 409 for other bytes (and nothing changes)", async () => {
    expect((await pushTemplate(r.url, r.tokens.push!, v1)).status).toBe(201);
    expect((await pushTemplate(r.url, r.tokens.push!, v1)).status).toBe(200);
    const other = makeTemplate(name, "1.0.0");
    const conflict = await pushTemplate(r.url, r.tokens.push!, other);
    expect(await errorOf(conflict)).toMatchObject({ status: 409, code: "VERSION_EXISTS" });
    const served = await fetch(`${r.url}/v1/templates/${name}/1.0.0`);
    expect(Buffer.from(await served.arrayBuffer()).equals(v1.manifest)).toBe(true);
    expect((await pushTemplate(r.url, r.tokens.push!, v11)).status).toBe(201);
    expect((await pushTemplate(r.url, r.tokens.push!, v2rc)).status).toBe(201);
  });

  it("serves the exact bytes by version, range and latest, with ETag and X-Template-Version", async () => {
    const byVersion = await fetch(`${r.url}/v1/templates/${name}/1.0.0`);
    expect(byVersion.headers.get("etag")).toBe(`"sha256:${sha256(v1.manifest)}"`);
    expect(byVersion.headers.get("x-template-version")).toBe("1.0.0");
    const byRange = await fetch(`${r.url}/v1/templates/${name}/${encodeURIComponent("^1")}`);
    expect(byRange.headers.get("x-template-version")).toBe("1.1.0");
    expect(Buffer.from(await byRange.arrayBuffer()).equals(v11.manifest)).toBe(true);
    const latest = await fetch(`${r.url}/v1/templates/${name}/latest`);
    expect(latest.headers.get("x-template-version")).toBe("1.1.0"); // not the rc
    const rc = await fetch(`${r.url}/v1/templates/${name}/${encodeURIComponent(">=2.0.0-rc.0")}`);
    expect(rc.headers.get("x-template-version")).toBe("2.0.0-rc.1");
    const head = await fetch(`${r.url}/v1/templates/${name}/latest`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("x-template-version")).toBe("1.1.0");
    expect(head.headers.get("content-length")).toBe(String(v11.manifest.length));
    expect(head.headers.get("cache-control")).toBe("no-cache"); // a tag moves; a version does not
    expect(byVersion.headers.get("cache-control")).toContain("immutable");
    const cached = await fetch(`${r.url}/v1/templates/${name}/1.0.0`, {
      headers: { "if-none-match": `"sha256:${sha256(v1.manifest)}"` },
    });
    expect(cached.status).toBe(304);
  });

  it("lists versions newest first with sizes, and the tags", async () => {
    const res = await fetch(`${r.url}/v1/templates/${name}`);
    const body = (await res.json()) as {
      tags: Record<string, string>;
      versions: { version: string; created: string; artifacts: { size: number }[] }[];
    };
    expect(body.versions.map((v) => v.version)).toEqual(["2.0.0-rc.1", "1.1.0", "1.0.0"]);
    expect(body.versions[2]!.artifacts[0]!.size).toBe(2048);
    expect(body.versions[2]!.created).toBe("2026-11-25T00:00:00Z");
    expect(body.tags).toEqual({ latest: "1.1.0" });
  });

  it("moves and removes tags; an explicit latest wins until removed", async () => {
    const set = (tag: string, version: string) =>
      fetch(`${r.url}/v1/templates/${name}/tags/${tag}`, { method: "PUT", headers: push, body: version });
    expect((await set("stable", "1.0.0")).status).toBe(200);
    expect((await fetch(`${r.url}/v1/templates/${name}/stable`)).headers.get("x-template-version")).toBe(
      "1.0.0",
    );
    expect((await set("stable", "1.1.0")).status).toBe(200);
    expect((await fetch(`${r.url}/v1/templates/${name}/stable`)).headers.get("x-template-version")).toBe(
      "1.1.0",
    );
    expect((await set("latest", "1.0.0")).status).toBe(200);
    expect((await fetch(`${r.url}/v1/templates/${name}/latest`)).headers.get("x-template-version")).toBe(
      "1.0.0",
    );
    expect(await errorOf(await set("stable", "9.9.9"))).toMatchObject({
      status: 400,
      code: "VERSION_UNKNOWN",
    });
    expect(await errorOf(await set("Bad", "1.0.0"))).toMatchObject({ status: 400, code: "TAG_INVALID" });
    const del = await fetch(`${r.url}/v1/templates/${name}/tags/latest`, { method: "DELETE", headers: push });
    expect(del.status).toBe(204);
    expect((await fetch(`${r.url}/v1/templates/${name}/latest`)).headers.get("x-template-version")).toBe(
      "1.1.0",
    );
    const again = await fetch(`${r.url}/v1/templates/${name}/tags/latest`, {
      method: "DELETE",
      headers: push,
    });
    expect(await errorOf(again)).toMatchObject({ status: 404, code: "TAG_UNKNOWN" });
    expect(await errorOf(await fetch(`${r.url}/v1/templates/${name}/nosuchtag`))).toMatchObject({
      status: 404,
      code: "TAG_UNKNOWN",
    });
  });

  it("stores and serves the manifest signature; 404 when unsigned", async () => {
    // No push policy here, so any well-formed signature is taken; its key does not matter.
    const key = await generateSigningKey({ name: "Routes Test" });
    const t = makeTemplate(name, "3.0.0");
    const sig = await signBytes(
      await openpgp.readPrivateKey({ armoredKey: key.privateKeyArmored }),
      t.manifest,
    );
    for (const blob of t.blobs) {
      await fetch(`${r.url}/v1/blobs/sha256:${sha256(blob)}`, { method: "PUT", headers: push, body: blob });
    }
    const res = await fetch(`${r.url}/v1/templates/${name}/3.0.0`, {
      method: "PUT",
      headers: { ...push, "x-template-signature": Buffer.from(sig).toString("base64") },
      body: t.manifest,
    });
    expect(res.status).toBe(201);
    const got = await fetch(`${r.url}/v1/templates/${name}/3.0.0/signature`);
    expect(got.status).toBe(200);
    expect(await got.text()).toBe(sig);
    const unsigned = await fetch(`${r.url}/v1/templates/${name}/1.0.0/signature`);
    expect(await errorOf(unsigned)).toMatchObject({ status: 404, code: "SIGNATURE_UNKNOWN" });
    const late = await fetch(`${r.url}/v1/templates/${name}/1.0.0/signature`, {
      method: "PUT",
      headers: push,
      body: sig,
    });
    expect(late.status).toBe(201);
    expect((await fetch(`${r.url}/v1/templates/${name}/1.0.0/signature`)).status).toBe(200);
    const notArmour = await fetch(`${r.url}/v1/templates/${name}/1.1.0/signature`, {
      method: "PUT",
      headers: push,
      body: "hi",
    });
    expect(await errorOf(notArmour)).toMatchObject({ status: 400, code: "SIGNATURE_INVALID" });
  });

  it("parses every signature at push: BEGIN/END lines around garbage are 400 SIGNATURE_INVALID", async () => {
    const garbage = [
      "-----BEGIN PGP SIGNATURE-----\n\niQEzBAABCAAdFiEE\n-----END PGP SIGNATURE-----\n",
      "-----BEGIN PGP SIGNATURE-----\n\nnot a signature at all\n-----END PGP SIGNATURE-----\n",
      "-----BEGIN PGP SIGNATURE-----\n-----END PGP SIGNATURE-----\n",
    ];
    const t = makeTemplate(name, "0.9.0");
    for (const blob of t.blobs) {
      await fetch(`${r.url}/v1/blobs/sha256:${sha256(blob)}`, { method: "PUT", headers: push, body: blob });
    }
    const version = `${r.url}/v1/templates/${name}/0.9.0`;
    for (const sig of garbage) {
      const withManifest = await fetch(version, {
        method: "PUT",
        headers: { ...push, "x-template-signature": Buffer.from(sig).toString("base64") },
        body: t.manifest,
      });
      expect(await errorOf(withManifest)).toMatchObject({ status: 400, code: "SIGNATURE_INVALID" });
    }
    expect((await fetch(version)).status).toBe(404); // nothing was stored
    expect((await fetch(version, { method: "PUT", headers: push, body: t.manifest })).status).toBe(201);
    for (const sig of garbage) {
      for (const path of ["signature", "signature/tar.zst"]) {
        const late = await fetch(`${version}/${path}`, { method: "PUT", headers: push, body: sig });
        expect(await errorOf(late), path).toMatchObject({
          status: 400,
          code: "SIGNATURE_INVALID",
          message: expect.stringMatching(
            /^signature must be an ASCII-armoured OpenPGP detached signature \(.+\)$/,
          ),
        });
        expect((await fetch(`${version}/${path}`)).status).toBe(404);
      }
    }
  });

  it("deletes a version (and tags pointing at it)", async () => {
    const del = await fetch(`${r.url}/v1/templates/${name}/1.1.0`, {
      method: "DELETE",
      headers: bearer(r.tokens.push),
    });
    expect(await errorOf(del)).toMatchObject({ status: 403, code: "DENIED" }); // push is not delete
    const admin = await startTokenless();
    const ok = await fetch(`${r.url}/v1/templates/${name}/1.1.0`, { method: "DELETE", headers: admin });
    expect(ok.status).toBe(204);
    expect((await fetch(`${r.url}/v1/templates/${name}/1.1.0`)).status).toBe(404);
    expect((await fetch(`${r.url}/v1/templates/${name}/stable`)).status).toBe(404); // the tag went with it
    expect(
      (await fetch(`${r.url}/v1/templates/${name}/${encodeURIComponent("^1")}`)).headers.get(
        "x-template-version",
      ),
    ).toBe("1.0.0");
    const twice = await fetch(`${r.url}/v1/templates/${name}/1.1.0`, { method: "DELETE", headers: admin });
    expect(await errorOf(twice)).toMatchObject({ status: 404, code: "VERSION_UNKNOWN" });
  });

  it("catalog lists templates with latest version, filtered by distro and arch", async () => {
    const other = makeTemplate("centos-10-aarch64", "10.0.0", { distro: "centos", arch: "aarch64" });
    expect((await pushTemplate(r.url, r.tokens.push!, other)).status).toBe(201);
    type Catalog = {
      templates: { name: string; latest: string; distro: string; arch: string; updated: string }[];
    };
    const all = (await (await fetch(`${r.url}/v1/templates`)).json()) as Catalog;
    const names = all.templates.map((t) => t.name);
    expect(names).toContain(name);
    expect(names).toContain("centos-10-aarch64");
    expect(all.templates.find((t) => t.name === name)?.latest).toBe("3.0.0");
    expect(Number.isNaN(Date.parse(all.templates[0]!.updated))).toBe(false);
    const centos = (await (await fetch(`${r.url}/v1/templates?distro=centos`)).json()) as Catalog;
    expect(centos.templates.map((t) => t.name)).toEqual(["centos-10-aarch64"]);
    const x86 = (await (await fetch(`${r.url}/v1/templates?arch=x86_64`)).json()) as Catalog;
    expect(x86.templates.map((t) => t.name)).not.toContain("centos-10-aarch64");
    const none = (await (await fetch(`${r.url}/v1/templates?distro=debian&arch=aarch64`)).json()) as Catalog;
    expect(none.templates).toEqual([]);
  });

  async function startTokenless(): Promise<Record<string, string>> {
    // A token with the delete scope, added to the running registry's config file.
    const { addTokenToConfig } = await import("../../registry/config.js");
    const { newToken } = await import("../../registry/auth.js");
    const t = newToken();
    await addTokenToConfig(r.configPath, { id: t.id, sha256: t.sha256, scopes: ["delete:debian-*"] });
    await new Promise((ok) => setTimeout(ok, 1100)); // the config is re-read at most once a second
    return bearer(t.token);
  }
});

describe("health, metrics, logs", () => {
  it("answers /healthz, /readyz and /metrics", async () => {
    expect(await (await fetch(`${r.url}/healthz`)).json()).toEqual({ status: "ok" });
    expect((await fetch(`${r.url}/readyz`)).status).toBe(200);
    const text = await (await fetch(`${r.url}/metrics`)).text();
    expect(text).toMatch(
      /templar_http_requests_total\{method="PUT",route="\/v1\/templates\/:name\/:version",status="201"\} \d+/,
    );
    expect(text).toMatch(
      /templar_http_requests_total\{method="GET",route="\/v1\/blobs\/:digest",status="206"\} \d+/,
    );
    expect(Number(/templar_pushes_total (\d+)/.exec(text)?.[1])).toBeGreaterThanOrEqual(4);
    expect(Number(/templar_bytes_served_total (\d+)/.exec(text)?.[1])).toBeGreaterThan(3_000_000);
    expect(Number(/templar_blobs_stored\{storage="local"\} (\d+)/.exec(text)?.[1])).toBeGreaterThan(3);
    expect(Number(/templar_blob_bytes_stored\{storage="local"\} (\d+)/.exec(text)?.[1])).toBeGreaterThan(
      4_000_000,
    );
  });

  it("answers unknown routes with a JSON 404", async () => {
    expect(await errorOf(await fetch(`${r.url}/v9/nothing`))).toMatchObject({
      status: 404,
      code: "NOT_FOUND",
    });
  });

  it("logged one JSON line per request, never a token", async () => {
    expect(r.logs.length).toBeGreaterThan(50);
    const text = JSON.stringify(r.logs);
    expect(text).not.toContain(r.tokens.push!);
    expect(text).not.toContain("tmpl_");
    const withToken = r.logs.filter((l) => String(l.client).startsWith("token:"));
    expect(withToken.length).toBeGreaterThan(10);
    // Background work (delta patches after pushes) logs events of its own.
    for (const l of r.logs.filter((l) => l.event === undefined))
      expect(l).toMatchObject({ method: expect.any(String), status: expect.any(Number) });
  });
});
