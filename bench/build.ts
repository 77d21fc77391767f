/**
 * Benchmark: `templar build` of recipes/debian/13-minimal.yaml (x86_64, formats zst) against
 * `mmdebstrap --variant=minbase trixie out.tar.zst <mirror>` in the same run.
 *
 *   npm run build && node dist/bench/build.js [--reps N] [--mirror URL]
 *
 * templar cold: an empty cache; templar warm: the cache the cold build filled (a root snapshot
 * is reused when the archive has not changed); templar warm --no-snapshot: the package cache
 * only (mmdebstrap runs again, downloading nothing). mmdebstrap keeps no cache, so each of its
 * runs is cold. The mirror comes from --mirror,
 * $TEMPLAR_DEBIAN_MIRROR or the host's apt sources. Runs alternate (reference, cold, warm) and
 * the median of each is compared. Targets: cold <= 1.3x mmdebstrap, warm <= 0.8x mmdebstrap.
 * Note the recipe installs systemd-sysv on top of minbase (82 packages against minbase's ~60),
 * so templar does more work than the reference.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { hostDebianMirror } from "../builder/sources/apt-sources.js";

const CLI = resolve(import.meta.dirname, "../cli/templar.js");
const RECIPE = resolve(import.meta.dirname, "../../recipes/debian/13-minimal.yaml");

function timed(what: string, cmd: string, args: string[]): number {
  const started = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { stdio: ["ignore", "ignore", "pipe"], encoding: "utf8" });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (r.status !== 0)
    throw new Error(`${what} failed (${r.status}): ${r.stderr.split("\n").slice(-5).join(" | ")}`);
  console.log(`  ${what.padEnd(36)} ${seconds.toFixed(1)} s`);
  return seconds;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function main(): void {
  const { values } = parseArgs({
    options: { reps: { type: "string", default: "1" }, mirror: { type: "string" } },
  });
  const mirror = values.mirror ?? process.env.TEMPLAR_DEBIAN_MIRROR ?? hostDebianMirror();
  if (!mirror) throw new Error("no Debian mirror: pass --mirror URL or set TEMPLAR_DEBIAN_MIRROR");
  const reps = Number(values.reps);
  const work = mkdtempSync(join(tmpdir(), "templar-bench-build-"));
  const ref: number[] = [];
  const cold: number[] = [];
  const warm: number[] = [];
  const warmDebs: number[] = [];
  try {
    for (let i = 0; i < reps; i++) {
      console.log(`round ${i + 1}/${reps}`);
      const refOut = join(work, `ref-${i}.tar.zst`);
      ref.push(timed("mmdebstrap", "mmdebstrap", ["--quiet", "--variant=minbase", "trixie", refOut, mirror]));
      rmSync(refOut, { force: true });
      const cache = join(work, `cache-${i}`);
      const build = (out: string, ...extra: string[]) => [
        CLI,
        "build",
        RECIPE,
        "--arch",
        "x86_64",
        "--formats",
        "zst",
        "--cache",
        cache,
        "--mirror",
        mirror,
        "--out",
        join(work, out),
        ...extra,
      ];
      cold.push(timed("templar build (cold)", "node", build(`cold-${i}`)));
      warm.push(timed("templar build (warm)", "node", build(`warm-${i}`)));
      warmDebs.push(
        timed("templar build (warm, --no-snapshot)", "node", build(`warm2-${i}`, "--no-snapshot")),
      );
      rmSync(join(work, `warm2-${i}`), { recursive: true, force: true });
      rmSync(join(work, `cold-${i}`), { recursive: true, force: true });
      rmSync(join(work, `warm-${i}`), { recursive: true, force: true });
    }
  } finally {
    spawnSync("rm", ["-rf", "--one-file-system", work]);
  }
  const r = median(ref);
  const c = median(cold);
  const w = median(warm);
  const w2 = median(warmDebs);
  console.log(
    `\nmedian of ${reps}: mmdebstrap ${r.toFixed(1)} s, templar cold ${c.toFixed(1)} s, warm ${w.toFixed(1)} s`,
  );
  console.log(`ratio cold/mmdebstrap ${(c / r).toFixed(2)} (target <= 1.30)`);
  console.log(`ratio warm/mmdebstrap ${(w / r).toFixed(2)} (target <= 0.80)`);
  console.log(
    `ratio warm --no-snapshot/mmdebstrap ${(w2 / r).toFixed(2)} (${w2.toFixed(1)} s: package cache only)`,
  );
}

main();
