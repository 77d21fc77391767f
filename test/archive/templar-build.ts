import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";

/** Running `templar build` on the real recipes against local copies of the upstreams. */
export const CLI = resolve("dist/cli/templar.js");

/**
 * A test recipe in `dir` that `extends:` the real one and overrides only `source.base` (the local
 * fixture server) and, when given, the pinned key (the test key and where to fetch it). That is
 * also how a mirror of an upstream is used in practice.
 */
export function overrideRecipe(
  dir: string,
  real: string,
  base: string,
  key?: { fingerprint: string; url: string },
): string {
  const path = join(dir, `test-${real.replace(/\W/g, "-")}`);
  const lines = [`extends: ${relative(dir, resolve(real))}`, "source:", `  base: ${base}`];
  if (key) {
    lines.push(
      "  signature:",
      "    keys:",
      `      - fingerprint: ${key.fingerprint}`,
      `        url: ${key.url}`,
    );
  }
  writeFileSync(path, `${lines.join("\n")}\n`);
  return path;
}

// Async: the fixture server runs in the test's process, so spawnSync would block it.
export function templar(args: string[]): Promise<{ status: number | null; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, SOURCE_DATE_EPOCH: "1790000000" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    child.on("close", (status) => done({ status, stderr }));
  });
}
