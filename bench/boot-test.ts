/**
 * Benchmark: the boot test of one template, `templar test FILE`, timed as a user runs it (the
 * whole command: extraction onto a tmpfs, boot, the seven checks, teardown).
 *
 *   npm run build && node dist/bench/boot-test.js [--template FILE] [--runs N] [--cache DIR] [--mirror URL]
 *
 * Without --template it first builds recipes/debian/13-standard.yaml (x86_64, zst) with the
 * package cache in --cache (default /var/cache/templar, so a second run builds from it), then
 * boots that template N times (default 5) and prints min / median / max of the wall time and
 * of the time to a settled boot. Target: under 30 s per template on a 2-core machine. Needs
 * root and systemd-nspawn, like `templar test`.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import type { BootTestReport } from "../builder/boot-test/boot-test.js";
import { hostDebianMirror } from "../builder/sources/apt-sources.js";

const CLI = resolve(import.meta.dirname, "../cli/templar.js");
const RECIPE = resolve(import.meta.dirname, "../../recipes/debian/13-standard.yaml");

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const spread = (values: number[]) =>
  `min ${Math.min(...values).toFixed(1)} s, median ${median(values).toFixed(1)} s, max ${Math.max(...values).toFixed(1)} s`;

function main(): void {
  const { values } = parseArgs({
    options: {
      template: { type: "string" },
      runs: { type: "string", default: "5" },
      cache: { type: "string", default: "/var/cache/templar" },
      mirror: { type: "string" },
    },
  });
  const work = mkdtempSync(join(tmpdir(), "templar-bench-boot-"));
  try {
    let template = values.template;
    if (!template) {
      const mirror = values.mirror ?? process.env.TEMPLAR_DEBIAN_MIRROR ?? hostDebianMirror();
      if (!mirror) throw new Error("no Debian mirror: pass --mirror URL or --template FILE");
      const out = join(work, "out");
      console.log(`building ${RECIPE} (cache ${values.cache})`);
      const args = [
        "build",
        RECIPE,
        "--arch",
        "x86_64",
        "--formats",
        "zst",
        "--cache",
        values.cache,
        "--mirror",
        mirror,
      ];
      const built = spawnSync("node", [CLI, ...args, "--out", out], {
        stdio: ["ignore", "ignore", "inherit"],
      });
      if (built.status !== 0) throw new Error(`templar build failed (${built.status})`);
      template = join(out, readdirSync(out).find((n) => n.endsWith(".tar.zst"))!);
    }
    const runs = Number(values.runs);
    const wall: number[] = [];
    const boot: number[] = [];
    for (let i = 0; i < runs; i++) {
      const started = process.hrtime.bigint();
      const r = spawnSync("node", [CLI, "test", template, "--json"], { encoding: "utf8" });
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      if (r.status !== 0) throw new Error(`templar test failed (${r.status}): ${r.stderr.trim()}`);
      const [report] = JSON.parse(r.stdout) as BootTestReport[];
      const settled = Number(/after ([\d.]+) s/.exec(report!.checks[0]!.detail)?.[1] ?? Number.NaN);
      wall.push(seconds);
      boot.push(settled);
      console.log(
        `  run ${i + 1}/${runs}: ${seconds.toFixed(1)} s (boot settled after ${settled.toFixed(1)} s)`,
      );
    }
    console.log(`\ntemplar test ${template}: ${runs} runs`);
    console.log(`  whole command:        ${spread(wall)} (target < 30 s)`);
    console.log(`  boot until settled:   ${spread(boot)}`);
  } finally {
    spawnSync("rm", ["-rf", "--one-file-system", work]);
  }
}

main();
