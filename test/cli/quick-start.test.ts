import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CliResult, runProcess } from "../helpers/registry-process.js";

const CHECKOUT = resolve(import.meta.dirname, "../..");

/** The ```sh blocks of README's "Quick start" section, in order. */
async function quickStartBlocks(): Promise<string[]> {
  const readme = await readFile(join(CHECKOUT, "README.md"), "utf8");
  const section = readme.split("\n## Quick start\n")[1]!.split("\n## ")[0]!;
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

/**
 * README's quick start as a newcomer walks it: `npm install -g .` from the checkout (into a
 * private npm prefix, so the test leaves the machine's global packages alone), then the demo
 * block as written, with the `templar` that install put on PATH. Only the port (8080 may be
 * taken here) and the demo folder are changed. `npm ci && npm run build` are not run again:
 * the tests run on the built checkout.
 */
describe("README quick start, literally", () => {
  let dir: string;
  let prefix: string;
  let home: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "templar-quickstart-"));
    prefix = join(dir, "npm-prefix");
    home = join(dir, "home");
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("installs `templar` on PATH and runs every step", async () => {
    const [install, demo] = await quickStartBlocks();
    expect(install).toContain("npm install -g .");
    const installLine = install!.split("\n").find((l) => l.includes("npm install -g ."))!;
    const installCmd = installLine.replace(/#.*$/, "").replace("npm ci && npm run build && ", "").trim();
    expect(installCmd).toBe("npm install -g .");
    const env = {
      ...process.env,
      npm_config_prefix: prefix,
      npm_config_audit: "false",
      npm_config_fund: "false",
      npm_config_offline: "true",
      HOME: home,
      TEMPLAR_TOKEN: "",
      TEMPLAR_REGISTRY: "",
      TEMPLAR_CONFIG: "",
      TEMPLAR_STORAGE: "",
      TEMPLAR_HOST_CONFIG: join(dir, "no-host-config.yaml"),
    };
    const installed = await runProcess(
      "bash",
      ["-c", `cd ${JSON.stringify(CHECKOUT)} && ${installCmd}`],
      env,
    );
    expect(installed.code, installed.stderr).toBe(0);
    const bin = join(prefix, "bin", "templar");
    expect((await stat(bin)).mode & 0o111).not.toBe(0);
    const PATH = `${join(prefix, "bin")}:${process.env.PATH}`;
    const version = await runProcess("bash", ["-c", "templar --version"], { ...env, PATH });
    expect(version.stdout).toBe("templar 0.1.0\n");
    const doctor = await runProcess("bash", ["-c", "templar doctor"], { ...env, PATH });
    expect(doctor.stdout).toContain("templar pack: ready");

    const port = await freePort();
    const script = demo!.replaceAll("127.0.0.1:8080", `127.0.0.1:${port}`);
    const r: CliResult = await runProcess(
      "bash",
      ["-e", "-c", `trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n${script}`],
      { ...env, PATH },
    );
    const all = `${r.stdout}\n${r.stderr}`;
    expect(r.code, all).toBe(0);
    expect(r.stdout).toMatch(/pushed demo-1-x86_64-minimal@1\.0\.0/);
    expect(r.stdout).toMatch(
      /pulled demo-1-x86_64-minimal@1\.0\.0 .* to .*cache\/demo-1-x86_64-minimal\.tar\.gz/,
    );
    expect(r.stdout).toMatch(
      /demo-1-x86_64-minimal\s+1\.0\.0\s+demo-1-x86_64-minimal\.tar\.gz\s+ok\s+signed by/,
    );
    expect(r.stdout).toMatch(/demo-1-x86_64-minimal: 1\.0\.1 has the same content as 1\.0\.0/);
    expect(r.stdout).toMatch(/deleted demo-1-x86_64-minimal@1\.0\.0/);
    expect(r.stdout).toMatch(/removed .*demo-1-x86_64-minimal\.tar\.gz/);
    // The secret key is private and where README says.
    const key = await stat(join(home, "templar-demo", "keys", "maintainer.key.asc"));
    expect(key.mode & 0o077).toBe(0);
  }, 240_000);
});
