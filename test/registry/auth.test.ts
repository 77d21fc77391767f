import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { globMatch } from "../../common/glob.js";
import { hashToken } from "../../registry/auth.js";
import { loadConfig } from "../../registry/config.js";
import {
  bearer,
  CLI,
  errorOf,
  makeTemplate,
  pushTemplate,
  spawnServe,
  startTestRegistry,
  type TestRegistry,
} from "../helpers/registry.js";

const run = promisify(execFile);

describe("scopes and anonymous pull", () => {
  let r: TestRegistry;
  const debian = makeTemplate("debian-13-x86_64", "1.0.0");
  const centos = makeTemplate("centos-10-x86_64", "1.0.0", { distro: "centos" });
  beforeAll(async () => {
    r = await startTestRegistry({
      anonymousPull: false,
      tokens: { push: ["push:*"], debianPull: ["pull:debian-*"], admin: ["admin"] },
    });
    expect((await pushTemplate(r.url, r.tokens.push!, debian)).status).toBe(201);
    expect((await pushTemplate(r.url, r.tokens.push!, centos)).status).toBe(201);
  });
  afterAll(async () => {
    await r?.close();
  });

  it("with anonymous pull off, GET without a token is 401 with a Bearer challenge", async () => {
    for (const path of [
      "/v1/templates",
      "/v1/templates/debian-13-x86_64/1.0.0",
      `/v1/blobs/${JSON.parse(debian.manifest.toString()).artifacts[0].digest}`,
    ]) {
      const res = await fetch(`${r.url}${path}`);
      expect(await errorOf(res), path).toMatchObject({ status: 401, code: "UNAUTHORIZED" });
      expect(res.headers.get("www-authenticate")).toContain("Bearer");
    }
  });

  it("a pull token for debian-* reads debian templates and gets 403 for others", async () => {
    const h = bearer(r.tokens.debianPull);
    expect((await fetch(`${r.url}/v1/templates/debian-13-x86_64/1.0.0`, { headers: h })).status).toBe(200);
    expect(
      await errorOf(await fetch(`${r.url}/v1/templates/centos-10-x86_64/1.0.0`, { headers: h })),
    ).toMatchObject({
      status: 403,
      code: "DENIED",
    });
    const catalog = (await (await fetch(`${r.url}/v1/templates`, { headers: h })).json()) as {
      templates: { name: string }[];
    };
    expect(catalog.templates.map((t) => t.name)).toEqual(["debian-13-x86_64"]);
    const push = await fetch(`${r.url}/v1/templates/debian-13-x86_64/tags/stable`, {
      method: "PUT",
      headers: h,
      body: "1.0.0",
    });
    expect(await errorOf(push)).toMatchObject({ status: 403, code: "DENIED" });
  });

  it("admin may do everything, an unknown token nothing (401, not anonymous)", async () => {
    const admin = bearer(r.tokens.admin);
    expect((await fetch(`${r.url}/v1/templates/centos-10-x86_64/1.0.0`, { headers: admin })).status).toBe(
      200,
    );
    expect(
      (await fetch(`${r.url}/v1/templates/centos-10-x86_64/1.0.0`, { method: "DELETE", headers: admin }))
        .status,
    ).toBe(204);
    const forged = await fetch(`${r.url}/v1/templates`, { headers: bearer(`${r.tokens.admin}x`) });
    expect(await errorOf(forged)).toMatchObject({ status: 401, code: "UNAUTHORIZED" });
    const basic = await fetch(`${r.url}/v1/templates`, { headers: { authorization: "Basic dXNlcjpwYXNz" } });
    expect((await errorOf(basic)).status).toBe(401);
  });

  it("health endpoints need no token", async () => {
    expect((await fetch(`${r.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${r.url}/readyz`)).status).toBe(200);
  });
});

describe("globs and hashing", () => {
  it("matches scope globs against whole names", () => {
    expect(globMatch("debian-*", "debian-13-x86_64")).toBe(true);
    expect(globMatch("debian-*", "xdebian-13")).toBe(false);
    expect(globMatch("*", "anything")).toBe(true);
    expect(globMatch("debian-1?-x86_64", "debian-13-x86_64")).toBe(true);
    expect(globMatch("debian.13", "debianx13")).toBe(false); // '.' is literal
  });
});

describe("templar token create", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "templar-token-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("prints the token once as the last line, stores only its hash, and a running server accepts it", async () => {
    const configPath = join(dir, "registry.yaml");
    const storageDir = join(dir, "data");
    const server = await spawnServe(storageDir, configPath);
    try {
      const { stdout, stderr } = await run(process.execPath, [
        CLI,
        "token",
        "create",
        "--scope",
        "push:debian-*",
        "--scope",
        "pull:*",
        "--config",
        configPath,
      ]);
      const lines = `${stdout}`.trim().split("\n");
      const token = lines[lines.length - 1]!;
      expect(token).toMatch(/^tmpl_[A-Za-z0-9_-]{43}$/);
      expect(stderr).toContain("push:debian-*");
      const text = await readFile(configPath, "utf8");
      expect(text).not.toContain(token);
      expect(text).toContain(hashToken(token));
      const config = await loadConfig(configPath);
      expect(config.tokens[0]?.scopes).toEqual(["push:debian-*", "pull:*"]);

      await new Promise((ok) => setTimeout(ok, 1100)); // config is re-read at most once a second
      const t = makeTemplate("debian-13-x86_64", "1.0.0");
      expect((await pushTemplate(server.url, token, t)).status).toBe(201);
      const other = makeTemplate("centos-10-x86_64", "1.0.0");
      const denied = await fetch(`${server.url}/v1/templates/centos-10-x86_64/1.0.0`, {
        method: "PUT",
        headers: bearer(token),
        body: other.manifest,
      });
      expect(await errorOf(denied)).toMatchObject({ status: 403, code: "DENIED" });
      // The server's request log never shows the token.
      expect(server.stdout.join("\n")).not.toContain(token);
      expect(server.stdout.join("\n")).toContain(`"client":"token:${config.tokens[0]!.id}"`);
    } finally {
      await server.stop();
    }
  });

  it("refuses bad scopes and a broken config with one line and a non-zero exit", async () => {
    const configPath = join(dir, "bad.yaml");
    const bad = await run(process.execPath, [
      CLI,
      "token",
      "create",
      "--scope",
      "write:*",
      "--config",
      configPath,
    ]).catch((e) => e);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split("\n")).toHaveLength(1);
    expect(bad.stderr).toContain("write:*");
    await writeFile(configPath, "anonymousPull: maybe\n");
    const broken = await run(process.execPath, [
      CLI,
      "serve",
      "--storage",
      join(dir, "d2"),
      "--listen",
      "127.0.0.1:0",
      "--config",
      configPath,
    ]).catch((e) => e);
    expect(broken.code).toBe(1);
    expect(broken.stderr).toMatch(/config .*bad\.yaml: anonymousPull/);
    expect(broken.stderr).not.toContain("    at ");
  });
});
