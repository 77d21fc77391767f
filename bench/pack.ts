/**
 * Benchmark: `templar pack` against GNU tar + zstd (+ pigz) on a real Debian root filesystem.
 *
 *   npm run build && node dist/bench/pack.js [--reps N] [--only zst|zst,gz] [--rootfs DIR] [--mirror URL]
 *
 * Written in TypeScript and compiled with the rest (Node 20 cannot run .ts). The rootfs is made
 * once with `mmdebstrap --variant=minbase bookworm` and cached under /var/tmp/templar-bench/; the
 * mirror comes from --mirror, $TEMPLAR_DEBIAN_MIRROR or the host's apt sources. Both sides run
 * alternately in the same process run, the reference first in each pair. The ratio is the median
 * of the per-pair ratios (each templar run over the reference run just before it): the speed of
 * the VM this was tuned on drifted by up to 25% within one bench run, which a ratio of the two
 * medians takes in and a pair does not; that ratio is printed too. 21 pairs by default: with 11,
 * the median of one run still moved between 1.37x and 1.54x from run to run. With
 * /usr/bin/time installed (Debian package `time`) it also prints CPU seconds of each process tree
 * (a figure that other load on the machine disturbs less than wall time) and the peak RSS. For
 * `--formats zst` a third pipeline runs between the two, `tar | sha256 relay in Node | zstd`
 * (bench/sha256-relay.ts): the floor for any packer that hashes the stream in Node, which templar
 * is also compared with.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";

const CACHE = "/var/tmp/templar-bench";
const CLI = resolve(import.meta.dirname, "../cli/templar.js");
const RELAY = resolve(import.meta.dirname, "sha256-relay.js");

function aptMirror(): string | undefined {
  const dir = "/etc/apt/sources.list.d";
  if (!existsSync(dir)) return undefined;
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".sources"))) {
    for (const stanza of readFileSync(join(dir, file), "utf8").split(/\n\s*\n/)) {
      const uris = /^URIs:\s*(\S+)/m.exec(stanza)?.[1];
      const suites = /^Suites:\s*(.+)$/m.exec(stanza)?.[1] ?? "";
      if (uris && /^Types:.*\bdeb\b/m.test(stanza) && !/security/.test(suites)) return uris;
    }
  }
  return undefined;
}

function ensureRootfs(mirror: string | undefined): string {
  const dir = join(CACHE, "bookworm-minbase");
  if (existsSync(dir)) return dir;
  const url = mirror ?? process.env.TEMPLAR_DEBIAN_MIRROR ?? aptMirror();
  if (!url) throw new Error("no Debian mirror: pass --mirror URL or set TEMPLAR_DEBIAN_MIRROR");
  mkdirSync(CACHE, { recursive: true });
  const tmp = `${dir}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  console.log(`making the rootfs once: mmdebstrap --variant=minbase bookworm ${tmp} ${url}`);
  execFileSync("mmdebstrap", ["--variant=minbase", "--mode=root", "bookworm", tmp, url], {
    stdio: "inherit",
  });
  renameSync(tmp, dir);
  return dir;
}

interface BenchCase {
  label: string;
  /** Shell command of the reference tools. */
  reference: string;
  /** Shell command of the floor pipeline (only for zst). */
  floor?: string;
  /** Arguments of `templar pack` after the rootfs. */
  ours: string[];
}

interface Run {
  seconds: number;
  /** user + system CPU seconds of the whole process tree (compressors included), if measured. */
  cpu?: number;
  rssMB?: number;
}

const haveTime = existsSync("/usr/bin/time");

/**
 * Node 20 parses the bundle named by NODE_EXTRA_CA_CERTS at every start-up (0.08 s of CPU here
 * for the system bundle), before any of our code runs; some sandboxes set it for their proxy. A
 * pack makes no TLS connection, and a host without that variable does not pay it, so templar
 * runs without it; the bench says so when it was set.
 */
const templarEnv = { ...process.env };
const extraCaCerts = templarEnv.NODE_EXTRA_CA_CERTS;
delete templarEnv.NODE_EXTRA_CA_CERTS;

function timed(argv: string[], cwd?: string, env?: NodeJS.ProcessEnv): Run {
  const full = haveTime ? ["/usr/bin/time", "-f", "%U %S %M", ...argv] : argv;
  const started = process.hrtime.bigint();
  const r = spawnSync(full[0]!, full.slice(1), {
    cwd,
    env,
    encoding: "utf8",
    stdio: ["ignore", "ignore", "pipe"],
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (r.status !== 0) throw new Error(`${argv.join(" ")} failed: ${r.stderr}`);
  if (!haveTime) return { seconds };
  const [user, sys, rss] = (r.stderr.trim().split("\n").pop() ?? "").split(" ").map(Number);
  return { seconds, cpu: user! + sys!, rssMB: rss! / 1024 };
}

function quantile(values: number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * q))]!;
}

function median(values: number[]): number {
  return quantile(values, 0.5);
}

/** "1.38x (middle half 1.33-1.48x)": the median and quartiles of per-pair ratios. */
function pairedRatio(ours: number[], ref: number[]): string {
  const ratios = ours.map((o, i) => o / ref[i]!);
  const q = (p: number) => quantile(ratios, p).toFixed(2);
  return `${q(0.5)}x (middle half ${q(0.25)}-${q(0.75)}x)`;
}

function main(): void {
  const { values } = parseArgs({
    options: {
      reps: { type: "string" },
      rootfs: { type: "string" },
      mirror: { type: "string" },
      only: { type: "string" }, // "zst" or "zst,gz": run one case
    },
  });
  const reps = Number(values.reps ?? 21);
  const rootfs = values.rootfs ? resolve(values.rootfs) : ensureRootfs(values.mirror);
  const du = execFileSync("du", ["-sb", rootfs], { encoding: "utf8" }).split("\t")[0];
  const files = execFileSync("sh", ["-c", `find "${rootfs}" | wc -l`], { encoding: "utf8" }).trim();
  const gz = existsSync("/usr/bin/pigz") ? "pigz -6" : "gzip -6";
  console.log(
    `rootfs ${rootfs}: ${(Number(du) / 1e6).toFixed(0)} MB, ${files} entries; ${reps} runs each, alternating`,
  );
  if (extraCaCerts)
    console.log(`note: templar runs without NODE_EXTRA_CA_CERTS (${extraCaCerts}), see templarEnv`);
  const out = join(tmpdir(), `templar-bench-${process.pid}`);
  const tar = "tar --sort=name --numeric-owner -cf - .";
  const cases: BenchCase[] = [
    {
      label: "zst",
      reference: `${tar} | zstd -T0 -3 -q > "${out}/ref.tar.zst"`,
      // The least a packer in Node that records the tar's sha256 does (bench/sha256-relay.ts).
      floor: `${tar} | "${process.execPath}" "${RELAY}" 2>/dev/null | zstd -T0 -3 -q > "${out}/floor.tar.zst"`,
      ours: ["--formats", "zst"],
    },
    {
      label: "zst,gz",
      // A fifo, not >(...): bash does not wait for a process substitution, so its time would be lost.
      reference: `mkfifo "${out}/fifo" && { zstd -T0 -3 -q < "${out}/fifo" > "${out}/ref.tar.zst" & ${tar} | tee "${out}/fifo" | ${gz} > "${out}/ref.tar.gz"; wait; }`,
      ours: ["--formats", "zst,gz"],
    },
  ];
  try {
    for (const c of cases.filter((x) => values.only === undefined || x.label === values.only)) {
      const ref: Run[] = [];
      const floor: Run[] = [];
      const ours: Run[] = [];
      for (let i = 0; i < reps; i++) {
        rmSync(out, { recursive: true, force: true });
        mkdirSync(out, { recursive: true });
        ref.push(timed(["bash", "-c", c.reference], rootfs));
        if (c.floor) floor.push(timed(["bash", "-c", c.floor], rootfs, templarEnv));
        ours.push(
          timed(
            [
              process.execPath,
              CLI,
              "pack",
              rootfs,
              "--name",
              "debian-12-x86_64-bench",
              "--version",
              "1.0.0",
              "--out",
              out,
              ...c.ours,
              "--json",
            ],
            undefined,
            templarEnv,
          ),
        );
      }
      const seconds = (runs: Run[]) => runs.map((x) => x.seconds);
      const r = median(seconds(ref));
      const o = median(seconds(ours));
      console.log(
        `--formats ${c.label.padEnd(7)} wall: ratio ${pairedRatio(seconds(ours), seconds(ref))} (target <= 1.5x); medians: templar ${o.toFixed(2)} s, reference ${r.toFixed(2)} s, ratio ${(o / r).toFixed(2)}x`,
      );
      if (haveTime) {
        const cpu = (runs: Run[]) => runs.map((x) => x.cpu!);
        // /usr/bin/time's %M is the largest single process of the tree: node, or a compressor.
        const rss = Math.max(...ours.map((x) => x.rssMB!));
        console.log(
          `                  cpu:  ratio ${pairedRatio(cpu(ours), cpu(ref))}; medians: templar ${median(cpu(ours)).toFixed(2)} s, reference ${median(cpu(ref)).toFixed(2)} s; templar peak RSS ${rss.toFixed(0)} MB (target < 200 MB)`,
        );
      }
      if (floor.length > 0) {
        console.log(
          `                  floor (tar | sha256 relay in Node | zstd): ${median(seconds(floor)).toFixed(2)} s, ${pairedRatio(seconds(floor), seconds(ref))} of the reference; templar ${pairedRatio(seconds(ours), seconds(floor))} of the floor`,
        );
      }
      const list = (runs: Run[]) => runs.map((x) => x.seconds.toFixed(2)).join(" ");
      console.log(
        `  runs: templar ${list(ours)} | reference ${list(ref)}${floor.length > 0 ? ` | floor ${list(floor)}` : ""}`,
      );
    }
    const shown = (command: string) => command.replaceAll(`"${out}/`, '"').replaceAll(`"${RELAY}"`, RELAY);
    console.log(`reference: ${cases.map((c) => shown(c.reference)).join("   ;   ")}`);
    for (const c of cases) if (c.floor) console.log(`floor: ${shown(c.floor)}`);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

main();
