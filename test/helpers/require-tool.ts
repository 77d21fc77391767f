import { spawnSync } from "node:child_process";

/**
 * Returns true when every program is on PATH. Otherwise, outside CI it prints why the caller
 * skips; under CI=true it throws, because CI must run every test (.ci/run installs the tools).
 */
export function haveTools(...programs: string[]): boolean {
  const missing = programs.filter((p) => spawnSync("sh", ["-c", `command -v ${p}`]).status !== 0);
  if (missing.length === 0) return true;
  const message = `missing tool(s): ${missing.join(", ")}`;
  if (process.env.CI === "true") throw new Error(`${message} (CI must have them: see .ci/run)`);
  console.warn(`skipping: ${message}`);
  return false;
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}
