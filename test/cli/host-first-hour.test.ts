import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newToken } from "../../registry/auth.js";
import { makeTemplate, pushTemplate, startTestRegistry, type TestRegistry } from "../helpers/registry.js";
import { TEMPLAR, templar } from "../helpers/registry-process.js";

/** `templar serve` started in `cwd` with only --storage: which config does it take? */
async function serveIn(
  cwd: string,
  args: string[],
): Promise<{ url: string; stderr: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [TEMPLAR, "serve", "--listen", "127.0.0.1:0", ...args], {
    cwd,
    env: { ...process.env, TEMPLAR_CONFIG: "", TEMPLAR_STORAGE: "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (d) => {
    stderr += d;
  });
  const url = await new Promise<string>((done, fail) => {
    createInterface({ input: child.stdout! }).on("line", (line) => {
      const entry = JSON.parse(line) as { event?: string; url?: string };
      if (entry.event === "listening") done(entry.url!);
    });
    child.once("exit", (code) => fail(new Error(`serve exited ${code}: ${stderr}`)));
  });
  // The banner follows the listening line.
  await new Promise((r) => setTimeout(r, 200));
  return { url, stderr, child };
}

describe("serve keeps its config beside its storage", () => {
  let dir: string;
  const children: ChildProcess[] = [];
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "templar-serveconf-"));
  });
  afterAll(async () => {
    for (const c of children) c.kill("SIGTERM");
    await rm(dir, { recursive: true, force: true });
  });

  it("a second registry started from the same directory does not take the first one's tokens", async () => {
    // The first registry's config in the working directory, named explicitly.
    const t = newToken();
    await writeFile(
      join(dir, "templar-registry.yaml"),
      `tokens:\n  - { id: ${t.id}, sha256: ${t.sha256}, scopes: ["push:*", "delete:*"] }\n`,
    );
    const first = await serveIn(dir, ["--storage", "./first", "--config", "templar-registry.yaml"]);
    children.push(first.child);
    expect(first.stderr).toContain(`config: ${join(dir, "templar-registry.yaml")}`);

    const mirror = await serveIn(dir, ["--storage", "./mirror"]);
    children.push(mirror.child);
    expect(mirror.stderr).toContain(`config: ${join(dir, "mirror", "templar-registry.yaml")} (not there yet`);
    expect(mirror.stderr).toContain(
      `${join(dir, "templar-registry.yaml")} in the working directory is not used`,
    );

    const tpl = makeTemplate("conf-1-x86_64-a", "1.0.0");
    expect((await pushTemplate(first.url, t.token, tpl)).status).toBe(201);
    expect((await pushTemplate(mirror.url, t.token, tpl).catch(() => ({ status: 401 }))).status).toBe(401);

    // token create --storage puts the token where serve --storage looks.
    const made = await templar(["token", "create", "--scope", "push:*", "--storage", join(dir, "mirror")], {
      TEMPLAR_CONFIG: "",
      TEMPLAR_STORAGE: "",
    });
    expect(made.code, made.stderr).toBe(0);
    expect(made.stderr).toContain(join(dir, "mirror", "templar-registry.yaml"));
    const token = made.stdout.trim();
    await new Promise((r) => setTimeout(r, 1100)); // the config is re-read at most once a second
    expect((await pushTemplate(mirror.url, token, tpl)).status).toBe(201);
  }, 30_000);
});

describe("a host's first hour: update, list, prune say what happened", () => {
  let reg: TestRegistry;
  let dir: string;
  const name = "same-1-x86_64-content";
  beforeAll(async () => {
    reg = await startTestRegistry({ tokens: { push: ["push:*"], del: ["delete:*"] } });
    dir = await mkdtemp(join(tmpdir(), "templar-host1-"));
  });
  afterAll(async () => {
    await reg?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("list on an empty cache and prune with nothing to do say so", async () => {
    const cache = join(dir, "empty");
    const list = await templar(["list", "--dest", cache]);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/no templates pulled into .*empty/);
    const prune = await templar(["prune", "--dest", cache]);
    expect(prune.code).toBe(0);
    expect(prune.stdout).toMatch(/nothing to prune/);
    const remote = await templar(["list", "--remote", "--registry", reg.url]);
    expect(remote.stdout).toMatch(/has no templates/);
  });

  for (const proxmox of [false, true]) {
    it(`update says a newer version has the same content and records it (${proxmox ? "Proxmox" : "OpenVZ"})`, async () => {
      const n = `${name}${proxmox ? "-pve" : ""}`;
      const cache = join(dir, proxmox ? "pve" : "ovz");
      const old = makeTemplate(n, "1.0.0");
      const flags = ["--dest", cache, "--allow-unsigned", ...(proxmox ? ["--proxmox"] : [])];
      expect((await pushTemplate(reg.url, reg.tokens.push!, old)).status).toBe(201);
      const pull = await templar(["pull", n, "--registry", reg.url, ...flags, "--format", "zst"]);
      expect(pull.code, pull.stderr).toBe(0);
      // The same artifact bytes under a newer version.
      const same = makeTemplate(n, "1.0.1", { blobs: old.blobs });
      expect((await pushTemplate(reg.url, reg.tokens.push!, same)).status).toBe(201);
      const update = await templar(["update", n, ...flags]);
      expect(update.code, update.stderr).toBe(0);
      expect(update.stdout).toContain(`${n}: 1.0.1 has the same content as 1.0.0`);
      const list = await templar(["list", "--dest", cache, "--json"]);
      const entries = JSON.parse(list.stdout) as { name: string; version: string; present: boolean }[];
      expect(entries.map((e) => [e.name, e.version, e.present])).toEqual([[n, "1.0.1", true]]);
      const files = (await readdir(cache)).filter((f) => !f.startsWith("."));
      expect(files).toEqual([proxmox ? `${n}_1.0.1_amd64.tar.zst` : `${n}.tar.zst`]);
      // Run again: now current.
      const again = await templar(["update", n, ...flags]);
      expect(again.stdout).toContain(`${n}: 1.0.1 is current`);
      // Delete the template from the registry: prune removes it and says so.
      for (const v of ["1.0.0", "1.0.1"]) {
        const del = await templar(["delete", `${n}@${v}`, "--registry", reg.url, "--token", reg.tokens.del!]);
        expect(del.code, del.stderr).toBe(0);
      }
      const prune = await templar(["prune", "--dest", cache]);
      expect(prune.stdout).toMatch(/removed .*gone from/);
      expect(existsSync(join(cache, files[0]!))).toBe(false);
    });
  }
});
