import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { commands } from "../../cli/commands/index.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";
import { templar } from "../helpers/registry-process.js";
import { makeTree } from "../helpers/template-fixture.js";

/** README's "Exit codes" table: meaning (its first words) -> code. */
async function readmeExitCodes(): Promise<Map<string, number>> {
  const readme = await readFile(resolve(import.meta.dirname, "../../README.md"), "utf8");
  const section = readme.split("\n## Exit codes\n")[1]!.split("\n## ")[0]!;
  const codes = new Map<string, number>();
  for (const m of section.matchAll(/^\|\s*(\d+)\s*\|\s*([^|(]+?)\s*(?:\(|\|)/gm))
    codes.set(m[2]!, Number(m[1]));
  return codes;
}

type Meaning = "success" | "failure" | "usage error" | "verification failed" | "not found";

interface Case {
  command: string;
  what: string;
  args: () => string[];
  expect: Meaning;
  /** A piece of the message that says what went wrong. */
  says?: RegExp;
}

const NAME = "exitcodes-1-x86_64-test";

describe("exit codes of every command follow README's table", () => {
  let dir: string;
  let reg: TestRegistry;
  const keys = () => join(dir, "keys");
  const cache = () => join(dir, "cache");

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "templar-exit-"));
    reg = await startTestRegistry({ tokens: { push: ["push:*"], del: ["delete:*"] } });
    await mkdir(keys());
    await mkdir(cache());
    for (const who of ["maintainer", "stranger"]) {
      const r = await templar([
        "key",
        "generate",
        "--name",
        who,
        "--email",
        `${who}@example.org`,
        "--out",
        join(keys(), who),
      ]);
      expect(r.code, r.stderr).toBe(0);
    }
    await makeTree(join(dir, "rootfs"), 4);
    const pack = await templar([
      "pack",
      join(dir, "rootfs"),
      "--name",
      NAME,
      "--version",
      "1.0.0",
      "--out",
      join(dir, "out"),
      "--formats",
      "gz",
      "--sign-key",
      join(keys(), "maintainer.key.asc"),
    ]);
    expect(pack.code, pack.stderr).toBe(0);
    const push = await templar([
      "push",
      join(dir, "out"),
      "--registry",
      reg.url,
      "--token",
      reg.tokens.push!,
    ]);
    expect(push.code, push.stderr).toBe(0);
  }, 60_000);

  afterAll(async () => {
    await reg?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const registry = () => ["--registry", reg.url];
  const cases: Case[] = [
    { command: "key", what: "no sub-command", args: () => ["key"], expect: "usage error" },
    { command: "doctor", what: "unknown command", args: () => ["doctor", "nonsense"], expect: "usage error" },
    {
      command: "build",
      what: "missing recipe",
      args: () => ["build", "/nonexistent/r.yaml"],
      expect: "not found",
    },
    {
      command: "test",
      what: "missing template",
      args: () => ["test", "/nonexistent/t.tar.zst"],
      expect: "not found",
    },
    {
      command: "pack",
      what: "missing rootfs",
      args: () => [
        "pack",
        "/nonexistent/rootfs",
        "--name",
        NAME,
        "--version",
        "1.0.0",
        "--out",
        join(dir, "o2"),
      ],
      expect: "not found",
    },
    {
      command: "pack",
      what: "missing --sign-key file",
      args: () => [
        "pack",
        join(dir, "rootfs"),
        ...["--name", NAME, "--version", "1.0.0", "--out", join(dir, "o3")],
        ...["--sign-key", join(dir, "nonexistent.key.asc")],
      ],
      expect: "not found",
      says: /signing key .*nonexistent\.key\.asc: no such file/,
    },
    {
      command: "inspect",
      what: "missing file",
      args: () => ["inspect", "/nonexistent.tar.zst"],
      expect: "not found",
    },
    {
      command: "serve",
      what: "bad --listen",
      args: () => ["serve", "--listen", "nowhere"],
      expect: "usage error",
    },
    {
      command: "serve",
      what: "S3 storage without a named config",
      args: () => ["serve", "--storage", "s3://bucket/prefix"],
      expect: "usage error",
      says: /--config/,
    },
    {
      command: "push",
      what: "missing out dir",
      args: () => ["push", "/nonexistent/out", ...registry()],
      expect: "not found",
    },
    {
      command: "pull",
      what: "no such template",
      args: () => ["pull", "nothere-1-x86_64-x", ...registry(), "--dest", cache()],
      expect: "not found",
    },
    {
      command: "pull",
      what: "missing keyring",
      args: () => ["pull", NAME, ...registry(), "--dest", cache(), "--keyring", join(dir, "nonexistent.asc")],
      expect: "not found",
      says: /keyring .*nonexistent\.asc: no such file/,
    },
    {
      command: "pull",
      what: "signed by a key not in the keyring",
      args: () => [
        "pull",
        NAME,
        ...registry(),
        "--dest",
        cache(),
        "--keyring",
        join(keys(), "stranger.pub.asc"),
      ],
      expect: "verification failed",
    },
    { command: "diff", what: "one template", args: () => ["diff", "a@1.0.0"], expect: "usage error" },
    {
      command: "diff",
      what: "a missing manifest file",
      args: () => ["diff", "/nonexistent/a.manifest.json", "/nonexistent/b.manifest.json"],
      expect: "not found",
    },
    { command: "list", what: "unknown option", args: () => ["list", "--bogus"], expect: "usage error" },
    {
      command: "update",
      what: "template not pulled",
      args: () => ["update", NAME, "--dest", cache()],
      expect: "not found",
    },
    { command: "prune", what: "unknown option", args: () => ["prune", "--bogus"], expect: "usage error" },
    { command: "mirror", what: "no arguments", args: () => ["mirror"], expect: "usage error" },
    { command: "token", what: "no sub-command", args: () => ["token"], expect: "usage error" },
    { command: "gc", what: "unknown option", args: () => ["gc", "--bogus"], expect: "usage error" },
    {
      command: "recipe",
      what: "missing recipe",
      args: () => ["recipe", "lint", "/nonexistent/r.yaml"],
      expect: "not found",
    },
    {
      command: "tag",
      what: "no such version",
      args: () => ["tag", `${NAME}@9.9.9`, "stable", ...registry(), "--token", reg.tokens.push!],
      expect: "not found",
    },
    {
      command: "tag",
      what: "a range, not a version",
      args: () => ["tag", `${NAME}@^1`, "stable", ...registry()],
      expect: "usage error",
    },
    {
      command: "tag",
      what: "tag a version",
      args: () => ["tag", `${NAME}@1.0.0`, "stable", ...registry(), "--token", reg.tokens.push!],
      expect: "success",
      says: new RegExp(`${NAME}@stable -> 1\\.0\\.0`),
    },
    {
      command: "untag",
      what: "remove that tag",
      args: () => ["untag", NAME, "stable", ...registry(), "--token", reg.tokens.push!],
      expect: "success",
    },
    {
      command: "untag",
      what: "no such tag",
      args: () => ["untag", NAME, "stable", ...registry(), "--token", reg.tokens.push!],
      expect: "not found",
    },
    {
      command: "delete",
      what: "a token without delete scope",
      args: () => ["delete", `${NAME}@1.0.0`, ...registry(), "--token", reg.tokens.push!],
      expect: "failure",
      says: /403/,
    },
    {
      command: "delete",
      what: "a bare name",
      args: () => ["delete", NAME, ...registry()],
      expect: "usage error",
    },
    {
      command: "delete",
      what: "no such version",
      args: () => ["delete", `${NAME}@9.9.9`, ...registry(), "--token", reg.tokens.del!],
      expect: "not found",
    },
  ];

  it("has a case for every command", () => {
    const covered = new Set(cases.map((c) => c.command));
    expect(Object.keys(commands).filter((c) => !covered.has(c))).toEqual([]);
  });

  it("README's table has every meaning the cases use", async () => {
    const table = await readmeExitCodes();
    for (const c of cases) expect(table.has(c.expect), c.expect).toBe(true);
  });

  it.each(cases.map((c) => [`${c.command}: ${c.what}`, c] as const))("%s", async (_label, c) => {
    const table = await readmeExitCodes();
    const r = await templar(c.args(), { TEMPLAR_HOST_CONFIG: join(dir, "no-host-config.yaml") });
    expect(r.code, `${r.stdout}${r.stderr}`).toBe(table.get(c.expect));
    if (c.says) expect(`${r.stdout}${r.stderr}`).toMatch(c.says);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it("delete with a delete token removes the version; a pull of it is then not found", async () => {
    const del = await templar(["delete", `${NAME}@1.0.0`, ...registry(), "--token", reg.tokens.del!]);
    expect(del.code, del.stderr).toBe(0);
    expect(del.stdout).toContain(`deleted ${NAME}@1.0.0`);
    const pull = await templar([
      "pull",
      `${NAME}@1.0.0`,
      ...registry(),
      "--dest",
      cache(),
      "--allow-unsigned",
    ]);
    expect(pull.code).toBe(4);
    expect(existsSync(join(cache(), `${NAME}.tar.gz`))).toBe(false);
  });

  it("pull without --dest on a machine without /vz/template/cache creates nothing and says so", async () => {
    if (existsSync("/vz")) {
      console.log("skipped: this machine has /vz (an OpenVZ host?)");
      return;
    }
    const hostConfig = join(dir, "empty-host.yaml");
    await writeFile(hostConfig, "{}\n");
    const r = await templar(["pull", NAME, ...registry()], { TEMPLAR_HOST_CONFIG: hostConfig });
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/\/vz\/template\/cache does not exist.*--dest/);
    expect(existsSync("/vz")).toBe(false);
  });
});
