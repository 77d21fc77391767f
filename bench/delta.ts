/**
 * Delta updates vs full downloads, in one run: a host holding version A of a template pulls
 * version B (a) through the registry's delta patch (`--delta always`), (b) as the full artifact
 * (`--no-delta`, what every other template tool does) and (c) as `--delta auto` chooses, the host
 * having measured the link (its full download of A) and its rebuild speed (one delta before).
 * Prints bytes transferred and wall time of each, and their ratios.
 *
 * The pair of trees: by default a copy of a real directory of this host (--tree, default
 * /usr/lib/python3: thousands of real package files) as A, and B = A with --changed files
 * rewritten (a line added at the top and one in the middle, as a package update does), one
 * folder removed and one added. Or two real builds with --debian RECIPE (e.g.
 * recipes/debian/12-minimal.yaml): `templar build --push` of the recipe as released (its
 * source with `pockets: []`) and then as it is today (with the suite's -updates and -security
 * pockets), the builds' versions numbered by the registry (version: auto); the Debian mirror
 * comes from --mirror, else the usual settings. Or two out directories of `templar build` with
 * different versions: --old-out DIR --new-out DIR, or two root trees to pack: --old-tree DIR
 * --new-tree DIR.
 *
 * Run:  npm run bench:delta  (npm run build && node dist/bench/delta.js)
 * Each way is timed over loopback and over paced links (--links, Mbit/s; a proxy in this process
 * paces what the registry sends).
 *
 * Options: --format zst|gz (default zst) --repeat 3 --changed 40 --tree DIR
 *          --links loopback,1000,100
 *          --debian RECIPE [--mirror URL] | --old-tree DIR --new-tree DIR | --old-out DIR --new-out DIR
 */
import { execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { median } from "./registry-tools.js";
import { throttledProxy } from "./throttle.js";

const TEMPLAR = join(import.meta.dirname, "..", "cli", "templar.js");
const { values: opts } = parseArgs({
  options: {
    format: { type: "string", default: "zst" },
    repeat: { type: "string", default: "3" },
    changed: { type: "string", default: "40" },
    tree: { type: "string", default: "/usr/lib/python3" },
    "old-tree": { type: "string" },
    "new-tree": { type: "string" },
    "old-out": { type: "string" },
    "new-out": { type: "string" },
    debian: { type: "string" },
    mirror: { type: "string" },
    links: { type: "string", default: "loopback,1000,100" },
  },
});
const repeat = Number(opts.repeat);
const format = opts.format === "gz" ? "tar.gz" : "tar.zst";

/** `templar ...` without blocking this process (the throttling proxy runs in it). */
function templarAsync(args: string[]): Promise<{ stdout: string; ms: number }> {
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [TEMPLAR, ...args], {
      env: { ...process.env, TEMPLAR_ALLOW_UNSIGNED: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.on("error", reject);
    child.on("close", (code) => {
      if (code !== 0) reject(new Error(`templar ${args.join(" ")}: exit ${code}: ${stderr}`));
      else resolve({ stdout, ms: Number(process.hrtime.bigint() - started) / 1e6 });
    });
  });
}

function templar(args: string[], env: Record<string, string> = {}): { stdout: string; ms: number } {
  const started = process.hrtime.bigint();
  const stdout = execFileSync(process.execPath, [TEMPLAR, ...args], {
    env: { ...process.env, TEMPLAR_ALLOW_UNSIGNED: "1", ...env },
    encoding: "utf8",
    maxBuffer: 1 << 26,
    stdio: ["ignore", "pipe", "pipe"],
  });
  return { stdout, ms: Number(process.hrtime.bigint() - started) / 1e6 };
}

async function* files(dir: string): AsyncGenerator<string> {
  for (const entry of (await readdir(dir, { withFileTypes: true })).sort((a, b) =>
    a.name < b.name ? -1 : 1,
  )) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* files(path);
    else if (entry.isFile()) yield path;
  }
}

/** A and B from one real tree: B has `changed` files rewritten, one folder less and one more. */
async function treePair(work: string): Promise<[string, string]> {
  const a = join(work, "tree-a");
  const b = join(work, "tree-b");
  await cp(opts.tree!, join(a, "usr", "lib", "tree"), { recursive: true, verbatimSymlinks: true });
  await cp(a, b, { recursive: true, verbatimSymlinks: true });
  const all: string[] = [];
  for await (const f of files(join(b, "usr", "lib", "tree"))) all.push(f);
  const step = Math.max(1, Math.floor(all.length / Number(opts.changed)));
  let n = 0;
  for (let i = 0; i < all.length && n < Number(opts.changed); i += step, n++) {
    const data = await readFile(all[i]!);
    const mid = Math.floor(data.length / 2);
    await writeFile(
      all[i]!,
      Buffer.concat([
        Buffer.from(`# updated ${n}\n`),
        data.subarray(0, mid),
        Buffer.from(`\n# patched ${n}\n`),
        data.subarray(mid),
      ]),
    );
  }
  const dirs = (await readdir(join(b, "usr", "lib", "tree"), { withFileTypes: true })).filter((d) =>
    d.isDirectory(),
  );
  if (dirs.length > 1) await rm(join(b, "usr", "lib", "tree", dirs[0]!.name), { recursive: true });
  await cp(
    join(a, "usr", "lib", "tree", dirs[dirs.length - 1]!.name),
    join(b, "usr", "lib", "tree", "added-in-b"),
    {
      recursive: true,
      verbatimSymlinks: true,
    },
  );
  return [a, b];
}

/**
 * Two real builds of a Debian recipe, pushed: as released (no update pockets) and as of today
 * (with -updates and -security). Returns their out directories.
 */
async function debianPair(
  recipe: string,
  work: string,
  url: string,
  token: string,
): Promise<[string, string]> {
  const text = await readFile(recipe, "utf8");
  if (!/^ {2}method: debootstrap$/m.test(text) || /^ {2}pockets:/m.test(text))
    throw new Error(`${recipe}: expected a debootstrap source that does not list its pockets`);
  const arch = execFileSync("uname", ["-m"], { encoding: "utf8" }).trim();
  const released = text.replace(/^ {2}method: debootstrap$/m, "  method: debootstrap\n  pockets: []");
  const outs: [string, string] = [join(work, "out-released"), join(work, "out-updated")];
  for (const [i, body] of [released, text].entries()) {
    const file = join(work, `${i === 0 ? "released" : "updated"}.yaml`);
    await writeFile(file, body);
    const args = ["build", file, "--arch", arch, "--out", outs[i]!, "--push", url, "--formats", "zst,gz"];
    const run = templar(opts.mirror ? [...args, "--mirror", opts.mirror] : args, { TEMPLAR_TOKEN: token });
    console.log(
      `built and pushed ${i === 0 ? "as released" : "with updates"} in ${(run.ms / 1000).toFixed(1)} s`,
    );
  }
  const diff = execFileSync(process.execPath, [TEMPLAR, "diff", outs[0], outs[1]], { encoding: "utf8" });
  console.log(diff.trimEnd());
  return outs;
}

async function startServe(storage: string, config: string): Promise<{ url: string; stop(): void }> {
  const child = spawn(
    process.execPath,
    [TEMPLAR, "serve", "--storage", storage, "--listen", "127.0.0.1:0", "--config", config],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const url = await new Promise<string>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`templar serve exited with ${code}`)));
    createInterface({ input: child.stdout! }).on("line", (line) => {
      try {
        const e = JSON.parse(line) as { event?: string; url?: string };
        if (e.event === "listening" && e.url) resolve(e.url.replace(/\/$/, ""));
      } catch {}
    });
  });
  return { url, stop: () => child.kill("SIGTERM") };
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), "templar-bench-delta-"));
  let server: { url: string; stop(): void } | null = null;
  try {
    const name = "bench-1-x86_64";
    let outA = opts["old-out"];
    let outB = opts["new-out"];
    const config = join(work, "registry.yaml");
    await writeFile(config, "gc:\n  interval: 0\n");
    const token = execFileSync(
      process.execPath,
      [TEMPLAR, "token", "create", "--config", config, "--scope", "push:*"],
      {
        encoding: "utf8",
      },
    )
      .trim()
      .split("\n")
      .pop()!;
    server = await startServe(join(work, "storage"), config);
    const url = server.url;
    let pushed = false;
    if (opts.debian) {
      [outA, outB] = await debianPair(opts.debian, work, url, token);
      pushed = true;
    } else if (!outA || !outB) {
      const [a, b] =
        opts["old-tree"] && opts["new-tree"] ? [opts["old-tree"], opts["new-tree"]] : await treePair(work);
      outA = join(work, "out-a");
      outB = join(work, "out-b");
      for (const [tree, out, version] of [
        [a, outA, "1.0.0"],
        [b, outB, "1.1.0"],
      ] as const)
        templar(["pack", tree, "--name", name, "--version", version, "--out", out, "--formats", "zst,gz"]);
    }
    if (!pushed)
      for (const out of [outA!, outB!]) templar(["push", out, "--registry", url], { TEMPLAR_TOKEN: token });
    const manifests = await Promise.all(
      [outA!, outB!].map(async (out) => {
        const file = (await readdir(out)).find((f) => f.endsWith(".manifest.json"))!;
        return JSON.parse(await readFile(join(out, file), "utf8"));
      }),
    );
    const [mA, mB] = manifests;
    const ref = `${mB.name}@${mB.version}`;
    // The registry makes the patch in the background after the push.
    const madeAt = Date.now();
    let index: { deltas: { size: number; windowLog: number }[]; pending?: boolean };
    for (;;) {
      index = (await (
        await fetch(`${url}/v1/templates/${mB.name}/${mB.version}/deltas`)
      ).json()) as typeof index;
      if (!index.pending) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const patch = index.deltas[0];
    if (!patch) throw new Error("the registry made no delta patch");
    const full = mB.artifacts.find((x: { format: string }) => x.format === format).size as number;
    console.log(
      `pair: ${mA.version} -> ${mB.version}, tar ${(mB.rootfs.tarSize / 2 ** 20).toFixed(1)} MiB, ${format} ${(full / 2 ** 20).toFixed(2)} MiB, ` +
        `patch ${(patch.size / 2 ** 20).toFixed(3)} MiB (window 2^${patch.windowLog}), made within ${((Date.now() - madeAt) / 1000).toFixed(1)} s of the push`,
    );

    for (const link of opts.links!.split(",")) {
      const proxy = link === "loopback" ? null : await throttledProxy(new URL(url), Number(link) * 1e6);
      const via = proxy?.url ?? url;
      // The host: version A pulled over this link (its full download measured the link), and
      // one delta applied before (its rebuild speed measured): what --delta auto weighs.
      const seed = join(work, `seed-${link}`);
      await templarAsync([
        "pull",
        `${mA.name}@${mA.version}`,
        "--registry",
        via,
        "--dest",
        seed,
        "--format",
        opts.format!,
      ]);
      const learn = join(work, `learn-${link}`);
      await cp(seed, learn, { recursive: true });
      await templarAsync([
        "pull",
        ref,
        "--registry",
        via,
        "--dest",
        learn,
        "--format",
        opts.format!,
        "--delta",
        "always",
      ]);
      await cp(join(learn, ".templar", "speeds.json"), join(seed, ".templar", "speeds.json"));
      await rm(learn, { recursive: true, force: true });

      const modes = ["delta", "full", "auto"] as const;
      const flags = { delta: ["--delta", "always"], full: ["--no-delta"], auto: [] };
      const times: Record<(typeof modes)[number], number[]> = { delta: [], full: [], auto: [] };
      const bytes: Record<(typeof modes)[number], number> = { delta: 0, full: 0, auto: 0 };
      const routes = new Set<string>();
      for (let i = 0; i < repeat; i++) {
        // Each mode in turn first, so a drift of the machine's speed hits them alike.
        for (const mode of i % 2 === 0 ? [...modes] : [...modes].reverse()) {
          const cache = join(work, `cache-${mode}-${i}`);
          await cp(seed, cache, { recursive: true });
          const args = ["pull", ref, "--registry", via, "--dest", cache, "--format", opts.format!, "--json"];
          const run = await templarAsync([...args, ...flags[mode]]);
          const result = JSON.parse(run.stdout) as { via: string; transferred: number };
          if (mode !== "auto" && result.via !== mode)
            throw new Error(`expected a ${mode} pull, got ${result.via}`);
          if (mode === "auto") routes.add(result.via);
          const tar = execFileSync(
            opts.format === "gz" ? "gzip" : "zstd",
            ["-dc", join(cache, `${mB.name}.${format}`)],
            {
              maxBuffer: 1 << 30,
            },
          );
          const sha = createHash("sha256").update(tar).digest("hex");
          if (sha !== mB.rootfs.tarSha256) throw new Error(`${mode} pull did not end with the signed tar`);
          times[mode].push(run.ms);
          bytes[mode] = result.transferred;
          await rm(cache, { recursive: true, force: true });
        }
      }
      await proxy?.close();
      const td = median(times.delta);
      const tf = median(times.full);
      const ta = median(times.auto);
      const over = link === "loopback" ? "loopback" : `a ${link} Mbit/s link`;
      console.log(`over ${over} (median of ${repeat}):`);
      console.log(`  templar pull --delta always:  ${bytes.delta} bytes, ${(td / 1000).toFixed(2)} s`);
      console.log(`  templar pull --no-delta:      ${bytes.full} bytes, ${(tf / 1000).toFixed(2)} s`);
      console.log(
        `  templar pull (--delta auto):  ${bytes.auto} bytes, ${(ta / 1000).toFixed(2)} s, via ${[...routes].join(" and ")}`,
      );
      console.log(
        `  always: bytes ratio ${(bytes.delta / bytes.full).toFixed(4)} (target <= 0.10), time ratio ${(td / tf).toFixed(2)}x; ` +
          `auto: bytes ratio ${(bytes.auto / bytes.full).toFixed(4)}, time ratio ${(ta / tf).toFixed(2)}x`,
      );
      // Where the routes meet over loopback: the delta's extra local work against the bytes it
      // saves, the loopback transfer itself taken as free.
      if (link === "loopback" && td > tf) {
        const mbit = ((bytes.full - bytes.delta) * 8) / ((td - tf) / 1000) / 1e6;
        console.log(
          `  so the delta route is the faster one on links slower than about ${mbit.toFixed(0)} Mbit/s`,
        );
      }
    }
  } finally {
    server?.stop();
    await rm(work, { recursive: true, force: true });
  }
}

await main();
