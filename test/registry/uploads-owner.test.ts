import { randomBytes } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashToken } from "../../registry/auth.js";
import { loadConfig } from "../../registry/config.js";
import { startCutProxy } from "../helpers/cut-proxy.js";
import { bearer, errorOf, sha256, startTestRegistry, type TestRegistry } from "../helpers/registry.js";

/**
 * Resumable uploads belong to the token that opened them, and what the request log shows of
 * them and of requests whose client went away.
 */
let r: TestRegistry;
beforeAll(async () => {
  r = await startTestRegistry({
    tokens: { alice: ["push:debian-*"], bob: ["push:*"], admin: ["admin"] },
    gc: { interval: 0 },
  });
});
afterAll(async () => {
  await r?.close();
});

async function open(token: string): Promise<string> {
  const res = await fetch(`${r.url}/v1/uploads`, { method: "POST", headers: bearer(token) });
  expect(res.status).toBe(202);
  return ((await res.json()) as { id: string }).id;
}

/** Every operation on an upload id, as `token` (or anonymous) sends it. */
function operations(id: string, token: string | undefined, chunk: Buffer) {
  const url = `${r.url}/v1/uploads/${id}`;
  const auth = bearer(token);
  return {
    GET: () => fetch(url, { headers: auth }),
    PATCH: () =>
      fetch(url, {
        method: "PATCH",
        headers: { ...auth, "content-range": `bytes 100-${99 + chunk.length}/*` },
        body: chunk,
      }),
    "PATCH (no Content-Range)": () => fetch(url, { method: "PATCH", headers: auth, body: chunk }),
    PUT: () => fetch(`${url}?digest=sha256:${sha256(chunk)}`, { method: "PUT", headers: auth }),
    DELETE: () => fetch(url, { method: "DELETE", headers: auth }),
  };
}

describe("resumable uploads are bound to the token that opened them", () => {
  it("answers any other token 404 UPLOAD_UNKNOWN, exactly as for an id that never existed", async () => {
    const data = randomBytes(300);
    const id = await open(r.tokens.alice!);
    const first = await fetch(`${r.url}/v1/uploads/${id}`, {
      method: "PATCH",
      headers: { ...bearer(r.tokens.alice), "content-range": "bytes 0-99/300" },
      body: data.subarray(0, 100),
    });
    expect(first.status).toBe(202);

    const never = "0123456789abcdef0123456789abcdef";
    for (const other of ["bob", "admin"]) {
      const theirs = operations(id, r.tokens[other], data.subarray(100));
      const nothing = operations(never, r.tokens[other], data.subarray(100));
      for (const [what, send] of Object.entries(theirs)) {
        const got = await errorOf(await send());
        const absent = await errorOf(await nothing[what as keyof typeof nothing]());
        expect(got, `${other} ${what}`).toMatchObject({ status: 404, code: "UPLOAD_UNKNOWN" });
        // The same answer, the id aside: nothing tells an upload of another token from none.
        expect(got.message.replace(id, "ID")).toBe(absent.message.replace(never, "ID"));
      }
    }
    // Anonymous callers get the push challenge before any lookup, whatever the id.
    for (const target of [id, never]) {
      for (const [what, send] of Object.entries(operations(target, undefined, data.subarray(100)))) {
        expect(await errorOf(await send()), `anonymous ${what}`).toMatchObject({
          status: 401,
          code: "UNAUTHORIZED",
        });
      }
    }

    // None of that touched the upload: its owner goes on and completes it.
    const state = await fetch(`${r.url}/v1/uploads/${id}`, { headers: bearer(r.tokens.alice) });
    expect(state.status).toBe(200);
    expect(((await state.json()) as { offset: number }).offset).toBe(100);
    const done = await fetch(`${r.url}/v1/uploads/${id}?digest=sha256:${sha256(data)}`, {
      method: "PUT",
      headers: { ...bearer(r.tokens.alice), "content-range": "bytes 100-299/300" },
      body: data.subarray(100),
    });
    expect(done.status).toBe(201);
    const blob = await fetch(`${r.url}/v1/blobs/sha256:${sha256(data)}`, { headers: bearer(r.tokens.bob) });
    expect(Buffer.from(await blob.arrayBuffer()).equals(data)).toBe(true);
  });

  it("stores the owner as a hash beside the upload, never the token or its id", async () => {
    const id = await open(r.tokens.bob!);
    const dir = join(r.storageDir, "uploads", id);
    expect((await readdir(dir)).sort()).toEqual(["info"]);
    const info = await readFile(join(dir, "info"), "utf8");
    const owner = (JSON.parse(info) as { owner: string }).owner;
    expect(owner).toMatch(/^[0-9a-f]{64}$/);
    const config = await loadConfig(r.configPath);
    const entry = config.tokens.find((t) => t.sha256 === hashToken(r.tokens.bob!))!;
    expect(owner).not.toContain(entry.id);
    expect(owner).not.toBe(entry.sha256);
    expect(info).not.toContain(entry.id);
    // Another token's upload has another owner.
    expect(
      JSON.parse(await readFile(join(r.storageDir, "uploads", await open(r.tokens.alice!), "info"), "utf8"))
        .owner,
    ).not.toBe(owner);
  });

  it("keeps upload ids out of the request log (only their first characters)", async () => {
    const id = await open(r.tokens.bob!);
    await fetch(`${r.url}/v1/uploads/${id}`, { headers: bearer(r.tokens.bob) });
    await fetch(`${r.url}/v1/uploads/${id}`, { method: "DELETE", headers: bearer(r.tokens.bob) });
    const lines = r.logs.filter((l) => String(l.route).startsWith("/v1/uploads/:id"));
    expect(lines.length).toBeGreaterThanOrEqual(2);
    expect(JSON.stringify(r.logs)).not.toContain(id);
    expect(lines.at(-1)).toMatchObject({ method: "DELETE", path: `/v1/uploads/${id.slice(0, 6)}...` });
  });
});

describe("a client that disconnects in the middle of its request body", () => {
  const waitForLog = async (match: (l: Record<string, unknown>) => boolean) => {
    for (let i = 0; i < 100 && !r.logs.some(match); i++) await new Promise((ok) => setTimeout(ok, 50));
    return r.logs.find(match);
  };

  it("is logged as a 499 with a short reason, not as a 500 with a stack trace", async () => {
    const proxy = await startCutProxy(Number(new URL(r.url).port), { upstream: () => 300_000 });
    try {
      const data = randomBytes(2_000_000);
      const put = fetch(`${proxy.url}/v1/blobs/sha256:${sha256(data)}`, {
        method: "PUT",
        headers: bearer(r.tokens.bob),
        body: data,
      });
      await expect(put).rejects.toThrow();
      const id = await open(r.tokens.bob!);
      const patch = fetch(`${proxy.url}/v1/uploads/${id}`, {
        method: "PATCH",
        headers: bearer(r.tokens.bob),
        body: data,
      });
      await expect(patch).rejects.toThrow();

      const cut = [
        { method: "PUT", path: `/v1/blobs/sha256:${sha256(data)}` },
        { method: "PATCH", path: `/v1/uploads/${id.slice(0, 6)}...` },
      ];
      for (const { method, path } of cut) {
        const line = await waitForLog((l) => l.method === method && l.path === path);
        expect(line, path).toMatchObject({
          status: 499,
          aborted: expect.stringMatching(/^client closed the connection before the request body ended/),
        });
        expect(line).not.toHaveProperty("error");
      }
      // The counters say the same.
      const metrics = await (await fetch(`${r.url}/metrics`)).text();
      expect(metrics).toContain('route="/v1/blobs/:digest",status="499"');
      expect(metrics).not.toMatch(/status="500"/);
    } finally {
      await proxy.close();
    }
  });
});
