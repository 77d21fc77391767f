import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../registry/config.js";
import { type RunningRegistry, startRegistry } from "../../registry/server.js";
import {
  bearer,
  errorOf,
  makeTemplate,
  pushTemplate,
  sha256,
  startTestRegistry,
  type TestRegistry,
} from "../helpers/registry.js";

/**
 * What a token (or no token) may read beyond the template routes: blobs by their templates'
 * names, the host-compatibility routes and /metrics.
 */
describe("blob reads follow the token's name scope", () => {
  let r: TestRegistry;
  /** A second process on the same storage directory, as a replica on the same bucket. */
  let other: RunningRegistry;
  const shared = randomBytes(3000);
  const debian = makeTemplate("debian-13-x86_64", "1.0.0", { blobs: [randomBytes(2000), shared] });
  const centos = makeTemplate("centos-10-x86_64", "1.0.0", { blobs: [randomBytes(2500), shared] });
  const blobUrl = (data: Buffer, base = r.url) => `${base}/v1/blobs/sha256:${sha256(data)}`;
  const read = (data: Buffer, token: string | undefined, init: RequestInit = {}, base = r.url) =>
    fetch(blobUrl(data, base), { ...init, headers: { ...bearer(token), ...(init.headers as object) } });

  beforeAll(async () => {
    r = await startTestRegistry({
      anonymousPull: false,
      // Long, so that only the rules below (not an expiring cache) decide what is seen.
      cacheTtl: "60s",
      tokens: {
        push: ["push:*"],
        debianPull: ["pull:debian-*"],
        debianPush: ["push:debian-*"],
        everything: ["pull:*"],
        admin: ["admin"],
        metricsOnly: ["delete:nothing-*"],
      },
      gc: { interval: 0 },
    });
    other = await startRegistry({
      storage: r.storage,
      configPath: r.configPath,
      host: "127.0.0.1",
      port: 0,
      log: () => {},
    });
    expect((await pushTemplate(r.url, r.tokens.push!, debian)).status).toBe(201);
    expect((await pushTemplate(r.url, r.tokens.push!, centos)).status).toBe(201);
  });
  afterAll(async () => {
    await other?.close();
    await r?.close();
  });

  it("serves a name-scoped token the blobs its templates name, shared ones included", async () => {
    for (const token of ["debianPull", "debianPush", "everything", "admin"]) {
      for (const blob of debian.blobs) {
        const res = await read(blob, r.tokens[token]);
        expect(res.status, token).toBe(200);
        expect(Buffer.from(await res.arrayBuffer()).equals(blob)).toBe(true);
      }
    }
  });

  it("answers a blob only other templates name exactly as one that does not exist (GET, HEAD, Range)", async () => {
    const centosOnly = centos.blobs[0]!;
    const absent = randomBytes(100);
    for (const token of ["debianPull", "debianPush"]) {
      for (const init of [{}, { method: "HEAD" }, { headers: { range: "bytes=0-9" } }] as RequestInit[]) {
        const got = await read(centosOnly, r.tokens[token], init);
        const none = await read(absent, r.tokens[token], init);
        expect(got.status, `${token} ${init.method ?? "GET"}`).toBe(404);
        expect(none.status).toBe(404);
        if (init.method === "HEAD") continue;
        const a = await errorOf(got);
        const b = await errorOf(none);
        expect(a.code).toBe("BLOB_UNKNOWN");
        expect(a.message.replace(sha256(centosOnly), "X")).toBe(b.message.replace(sha256(absent), "X"));
      }
    }
    // Tokens that may pull every name read it without any lookup.
    for (const token of ["everything", "admin", "push"])
      expect((await read(centosOnly, r.tokens[token])).status, token).toBe(200);
  });

  it("sees at once what another replica just published, though its own view is young", async () => {
    const centosOnly = centos.blobs[0]!;
    expect((await read(centosOnly, r.tokens.debianPull)).status).toBe(404); // view built just now
    // Through the other process: a debian version naming the centos blob, and one with a new blob.
    const reuse = makeTemplate("debian-13-x86_64", "1.1.0", { blobs: [centosOnly] });
    const fresh = makeTemplate("debian-13-x86_64", "1.2.0", { blobs: [randomBytes(1500)] });
    expect((await pushTemplate(other.url, r.tokens.push!, reuse)).status).toBe(201);
    expect((await pushTemplate(other.url, r.tokens.push!, fresh)).status).toBe(201);
    expect((await read(centosOnly, r.tokens.debianPull)).status).toBe(200);
    expect((await read(fresh.blobs[0]!, r.tokens.debianPull)).status).toBe(200);
  });

  it("stops serving a blob at once when the version that named it is deleted here", async () => {
    const only = makeTemplate("debian-13-x86_64", "2.0.0", { blobs: [randomBytes(1800)] });
    expect((await pushTemplate(r.url, r.tokens.push!, only)).status).toBe(201);
    expect((await read(only.blobs[0]!, r.tokens.debianPull)).status).toBe(200);
    const del = await fetch(`${r.url}/v1/templates/debian-13-x86_64/2.0.0`, {
      method: "DELETE",
      headers: bearer(r.tokens.admin),
    });
    expect(del.status).toBe(204);
    expect((await read(only.blobs[0]!, r.tokens.debianPull)).status).toBe(404);
    expect((await read(only.blobs[0]!, r.tokens.everything)).status).toBe(200); // still stored
  });

  it("requires a token on every host-compatibility route when anonymous pull is off", async () => {
    const paths = [
      "/precreated/.listing",
      "/precreated/beta/.listing",
      "/precreated/debian-13-x86_64.tar.zst",
      "/precreated/debian-13-x86_64.tar.zst.asc",
      "/precreated/no-such-file",
      "/aplinfo.dat",
      "/aplinfo.dat.gz",
      "/aplinfo.dat.asc",
      "/proxmox/debian-13-x86_64_1.0.0_amd64.tar.zst",
      "/proxmox/no-such-file",
    ];
    for (const path of paths) {
      for (const method of ["GET", "HEAD"]) {
        const res = await fetch(`${r.url}${path}`, { method });
        expect(res.status, `${method} ${path}`).toBe(401);
        expect(res.headers.get("www-authenticate")).toContain("Bearer");
      }
    }
    // A pull token sees what its scope allows, as on /v1.
    const listing = await fetch(`${r.url}/precreated/.listing`, { headers: bearer(r.tokens.debianPull) });
    expect(listing.status).toBe(200);
    expect(await listing.text()).toBe("debian-13-x86_64\n");
    const aplinfo = await fetch(`${r.url}/aplinfo.dat`, { headers: bearer(r.tokens.debianPull) });
    expect(aplinfo.status).toBe(200);
    expect(await aplinfo.text()).toContain("Package: debian-13-x86_64");
    const file = await fetch(`${r.url}/precreated/debian-13-x86_64.tar.zst`, {
      method: "HEAD",
      headers: bearer(r.tokens.debianPull),
    });
    expect(file.status).toBe(200);
    // The pages answer 401 as well (they authenticate like the API).
    for (const path of ["/", "/templates/debian-13-x86_64", "/templates/debian-13-x86_64/1.0.0"])
      expect((await fetch(`${r.url}${path}`)).status, path).toBe(401);
  });

  it("serves /metrics to anyone by default, and only to a token (any scope) with `metrics: token`", async () => {
    expect((await fetch(`${r.url}/metrics`)).status).toBe(200);
    await setMetrics(r, "token");
    const anonymous = await fetch(`${r.url}/metrics`);
    expect(await errorOf(anonymous)).toMatchObject({ status: 401, code: "UNAUTHORIZED" });
    expect(anonymous.headers.get("www-authenticate")).toContain("Bearer");
    const forged = await fetch(`${r.url}/metrics`, { headers: bearer(`${r.tokens.admin}x`) });
    expect((await errorOf(forged)).status).toBe(401);
    const scraper = await fetch(`${r.url}/metrics`, { headers: bearer(r.tokens.metricsOnly) });
    expect(scraper.status).toBe(200);
    expect(await scraper.text()).toContain("templar_http_requests_total");
    // Health checks stay open.
    expect((await fetch(`${r.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${r.url}/readyz`)).status).toBe(200);
    await setMetrics(r, "public");
    expect((await fetch(`${r.url}/metrics`)).status).toBe(200);
  });
});

describe("the metrics setting", () => {
  it("is public or token, nothing else", () => {
    expect(parseConfig("{}", "r.yaml").metrics).toBe("public");
    expect(parseConfig("metrics: token\n", "r.yaml").metrics).toBe("token");
    expect(() => parseConfig("metrics: private\n", "r.yaml")).toThrow(/r\.yaml: metrics: /);
  });
});

/** Rewrites the running registry's config with another `metrics:` and waits until it is re-read. */
async function setMetrics(r: TestRegistry, value: "public" | "token"): Promise<void> {
  const text = (await readFile(r.configPath, "utf8")).replace(/^metrics: .*\n/m, "");
  await writeFile(r.configPath, `${text}metrics: ${value}\n`);
  for (let i = 0; i < 40; i++) {
    await new Promise((ok) => setTimeout(ok, 100));
    if ((await r.registry.deps.config.get()).metrics === value) return;
  }
  throw new Error(`the registry did not pick up metrics: ${value}`);
}
