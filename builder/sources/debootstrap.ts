import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { z } from "zod";
import { archAs } from "../../common/arch.js";
import { UserError } from "../../common/errors.js";
import { isolated, runInRoot } from "../chroot.js";
import type { BuildContext } from "../context.js";
import { buildEnv, runTool } from "../exec.js";
import { formatPlace } from "../recipe/schema.js";
import { realPathInRoot, removeInRoot, replaceFile } from "../rootfs.js";
import { hostDebianMirror } from "./apt-sources.js";
import {
  type DebianSuiteSource,
  defaultPockets,
  POCKETS,
  releaseFileOf,
  securityMirror,
  sourceLines,
  suiteSources,
} from "./debian-pockets.js";
import { restoreSnapshot, saveSnapshot, snapshotKey } from "./snapshot.js";
import { defineSource, type ProbeContext, type SourceProbe, type SourceResult } from "./source.js";

/**
 * Debian (and derivatives) from their archive: mmdebstrap when installed, debootstrap otherwise.
 * The Release file is always verified against a keyring (never an option that turns it off);
 * .deb files are checked by apt/debootstrap against the verified indices when downloaded.
 *
 * Package cache: `<cache>/debian/archives` holds every .deb a build downloaded, named as apt
 * names them (`pkg_version_arch.deb`). mmdebstrap: a setup hook links (or copies) them into the
 * new root's /var/cache/apt/archives (apt then skips those downloads), `--skip=download/empty`
 * allows the non-empty directory, `--skip=essential/unlink` keeps the essential set there, and a
 * customize hook copies new files back (temp name + rename) and counts them. debootstrap: its
 * own `--cache-dir`, and the same directory as apt's archives when the pockets update. Trust:
 * files enter the cache only after apt/debootstrap verified them; the cache directory is
 * root-only (0700).
 */
const packageName = z.string().regex(/^[a-z0-9][a-z0-9+.-]+$/, "expected a Debian package name");

const DebootstrapConfig = z.strictObject({
  method: z.literal("debootstrap"),
  suite: z.string().regex(/^[a-z0-9][a-z0-9.-]*$/, "expected a suite or codename such as trixie"),
  /** minbase: essential + apt; buildd: + build-essential; default: required + important. */
  variant: z.enum(["minbase", "buildd", "default"]).default("minbase"),
  components: z
    .array(z.string().regex(/^[a-z0-9-]+$/))
    .min(1)
    .default(["main"]),
  include: z.array(packageName).default([]),
  /** debootstrap: not installed; mmdebstrap (which has no --exclude): purged after install. */
  exclude: z.array(packageName).default([]),
  /** OpenPGP keyring for the Release file; relative paths are relative to the recipe. */
  keyring: z.string().default("/usr/share/keyrings/debian-archive-keyring.gpg"),
  /** <suite>-updates and <suite>-security; default both (none for unstable): debian-pockets.ts. */
  pockets: z.array(z.enum(POCKETS)).optional(),
});
type Config = z.infer<typeof DebootstrapConfig>;

function have(program: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${program}`], { stdio: "ignore" }).status === 0;
}

function toolVersion(program: string): string {
  const out = spawnSync("dpkg-query", ["-W", "-f", "$" + "{Version}", program], { encoding: "utf8" });
  return out.status === 0 && out.stdout ? `${program} ${out.stdout}` : program;
}

// Runs inside mmdebstrap's hooks: `in` links cached debs into the root, `out` copies new ones
// back into the cache and records what had to be downloaded. $1 = the root, $2 = state dir.
const HOOK = `set -eu
mode="$1"; root="$2"; state="$3"; cache="$4"; arch="$5"
archives="$root/var/cache/apt/archives"
if [ "$mode" = in ]; then
  mkdir -p "$archives/partial"
  for f in "$cache"/*_"$arch".deb "$cache"/*_all.deb; do
    [ -f "$f" ] || continue
    ln "$f" "$archives/" 2>/dev/null || cp -p "$f" "$archives/"
  done
  ls "$archives" > "$state/before"
else
  : > "$state/fetched"
  for f in "$archives"/*.deb; do
    # Not through a symlink in the root: it could name any file of the host.
    [ -f "$f" ] && [ ! -L "$f" ] || continue
    name=\${f##*/}
    grep -qxF "$name" "$state/before" || stat -c '%s %n' "$f" >> "$state/fetched"
    # A private temporary name per build: concurrent builds never write the same file.
    if [ ! -e "$cache/$name" ]; then cp -p "$f" "$cache/.$name.$$.partial" && mv -f "$cache/.$name.$$.partial" "$cache/$name"; fi
  done
  mkdir -p "$state/lists"
  for f in "$root"/var/lib/apt/lists/*Release; do
    if [ -f "$f" ] && [ ! -L "$f" ]; then cp "$f" "$state/lists/"; fi
  done
fi
`;

/** The mirror, keyring and suites a build of `config` uses, each checked. */
function plan(config: Config, ctx: ProbeContext) {
  const where = formatPlace(ctx.recipe.source.place);
  const mirror = (ctx.mirror ?? hostDebianMirror(ctx.aptDir))?.replace(/\/+$/, "");
  if (!mirror) {
    throw new UserError(
      `${where}: source: no Debian mirror found: pass --mirror URL, set TEMPLAR_DEBIAN_MIRROR, ` +
        `or add a deb source to ${ctx.aptDir}/sources.list.d/*.sources or ${ctx.aptDir}/sources.list`,
    );
  }
  if (!/^(https?|file):\/\//.test(mirror)) {
    throw new UserError(
      `${where}: source: mirror ${JSON.stringify(mirror)} is not an http(s):// or file:// URL`,
    );
  }
  const keyring = resolve(dirname(ctx.recipe.path), config.keyring);
  if (!existsSync(keyring)) {
    throw new UserError(
      `${where}: source.keyring: ${keyring} does not exist (install debian-archive-keyring?)`,
    );
  }
  const pockets = config.pockets ?? defaultPockets(config.suite);
  const sources = suiteSources(mirror, config.suite, pockets, () =>
    securityMirror(mirror, ctx.aptDir, where, ctx.securityMirror),
  );
  return { where, mirror, keyring, pockets, sources };
}

/** Each suite's InRelease now (verified against the keyring), for `build --if-changed`. */
async function probe(config: Config, ctx: ProbeContext): Promise<SourceProbe> {
  const { keyring, sources } = plan(config, ctx);
  const inputs = [];
  for (const source of sources) {
    const now = await currentInRelease(source.mirror, source.suite, keyring, ctx);
    if (!now)
      throw new UserError(`${source.mirror}/dists/${source.suite}/InRelease: cannot be fetched or verified`);
    inputs.push(now);
  }
  return { inputs };
}

async function populate(config: Config, ctx: BuildContext): Promise<SourceResult> {
  const { where, mirror, keyring, pockets, sources } = plan(config, ctx);
  const arch = archAs(ctx.recipe.arch, "debian");
  const cache = join(ctx.cacheDir, "debian", "archives");
  await mkdir(cache, { recursive: true, mode: 0o700 });
  const tool = ctx.bootstrapTool ?? (have("mmdebstrap") ? "mmdebstrap" : "debootstrap");
  if (!have(tool)) throw new UserError(`${where}: source: neither mmdebstrap nor debootstrap is installed`);
  const suites = sources.map((s) => s.suite).join(", ");
  ctx.log(`${tool} ${suites} ${arch} from ${[...new Set(sources.map((s) => s.mirror))].join(" and ")}`);

  // Same tool, settings, keyring and archive state as an earlier build: reuse its root.
  let key: string | undefined;
  if (ctx.snapshots !== false) {
    const releases = [];
    for (const source of sources)
      releases.push(await currentInRelease(source.mirror, source.suite, keyring, ctx));
    if (releases.every(Boolean)) {
      const keyringSha = createHash("sha256")
        .update(await readFile(keyring))
        .digest("hex");
      const sde = ctx.sourceDateEpoch ?? null;
      key = snapshotKey({ v: 2, tool: toolVersion(tool), config, arch, sources, keyringSha, releases, sde });
      const hit = await restoreSnapshot(ctx.cacheDir, key, ctx.root, ctx.signal);
      if (hit) {
        ctx.log(`reused the root of an earlier build with the same inputs (snapshot ${key.slice(0, 12)})`);
        return hit;
      }
    }
  }

  const state = await mkdtemp(join(tmpdir(), "templar-debootstrap-"));
  try {
    let fetched: SourceResult["fetched"];
    let releaseFiles: string[];
    const env = buildEnv({
      SOURCE_DATE_EPOCH: ctx.sourceDateEpoch === undefined ? undefined : String(ctx.sourceDateEpoch),
    });
    if (tool === "mmdebstrap") {
      const hook = join(state, "cache-hook.sh");
      await writeFile(hook, HOOK);
      const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
      const call = (mode: string) => `sh ${q(hook)} ${mode} "$1" ${q(state)} ${q(cache)} ${q(arch)}`;
      const variant = config.variant === "default" ? "debootstrap" : config.variant;
      const args = [
        "mmdebstrap",
        "--mode=root",
        `--variant=${variant}`,
        `--architectures=${arch}`,
        `--components=${config.components.join(",")}`,
        `--keyring=${keyring}`,
        '--aptopt=Acquire::Retries "3"',
        '--aptopt=Acquire::Languages "none"',
        // No fsync per file: a crash throws the build away anyway (mmdebstrap removes this
        // setting from the root when it finishes).
        "--dpkgopt=force-unsafe-io",
        "--skip=download/empty",
        "--skip=essential/unlink",
        `--setup-hook=${call("in")}`,
      ];
      if (config.include.length) args.push(`--include=${config.include.join(",")}`);
      if (config.exclude.length) {
        const list = config.exclude.join(" ");
        args.push(`--customize-hook=chroot "$1" apt-get -y -q purge --allow-remove-essential ${list}`);
      }
      args.push(
        `--customize-hook=${call("out")}`,
        config.suite,
        ctx.root,
        ...sourceLines(sources, config.components),
      );
      // mmdebstrap mounts /proc, /sys and /dev itself: its own namespace drops them if it dies.
      const [cmd, argv] = isolated(args);
      await runTool(cmd, argv, { what: "mmdebstrap", env, signal: ctx.signal, onLine: ctx.log });
      fetched = await countFetched(join(state, "fetched"));
      releaseFiles = await listFiles(join(state, "lists"));
    } else {
      const before = new Set(await readdir(cache));
      const variant = config.variant === "default" ? [] : [`--variant=${config.variant}`];
      const args = [
        "debootstrap",
        ...variant,
        `--arch=${arch}`,
        `--components=${config.components.join(",")}`,
        `--keyring=${keyring}`,
        `--cache-dir=${cache}`,
      ];
      if (config.include.length) args.push(`--include=${config.include.join(",")}`);
      if (config.exclude.length) args.push(`--exclude=${config.exclude.join(",")}`);
      args.push(config.suite, ctx.root, mirror);
      const [cmd, argv] = isolated(args);
      await runTool(cmd, argv, { what: "debootstrap", env, signal: ctx.signal, onLine: ctx.log });
      if (sources.length > 1) await upgradeFromPockets(ctx, sources, config.components, keyring, cache);
      const added = (await readdir(cache)).filter((f) => f.endsWith(".deb") && !before.has(f));
      let bytes = 0;
      for (const f of added) bytes += (await stat(join(cache, f))).size;
      fetched = { files: added.length, bytes };
      const lists = await realPathInRoot(ctx.root, "/var/lib/apt/lists");
      releaseFiles = (await listFiles(lists)).filter((f) => /Release$/.test(f));
    }
    const inputs = [];
    for (const source of sources) {
      const release = releaseFileOf(source, releaseFiles);
      if (!release) continue; // apt named it otherwise: the manifest then lacks that one input
      const sha256 = createHash("sha256")
        .update(await readFile(release.file))
        .digest("hex");
      inputs.push({ uri: release.uri, sha256, verified: `apt-release:${keyring}` });
    }
    const result: SourceResult = {
      manifest: {
        method: "debootstrap",
        tool: toolVersion(tool),
        suite: config.suite,
        variant: config.variant,
        components: config.components,
        include: config.include,
        ...(config.exclude.length ? { exclude: config.exclude } : {}),
        pockets,
        mirror,
        inputs,
      },
      fetched,
    };
    if (key) await saveSnapshot(ctx.cacheDir, key, ctx.root, result, ctx.signal);
    return result;
  } finally {
    await rm(state, { recursive: true, force: true });
  }
}

/**
 * debootstrap installs from one suite only: the update pockets come afterwards from apt inside the
 * root (what mmdebstrap does in one go). apt trusts only the recipe's keyring for this (signed-by,
 * bound read-only into the root), downloads into the package cache (bound in as apt's archives),
 * and the root keeps plain `deb` lines for every source, as mmdebstrap writes them.
 */
async function upgradeFromPockets(
  ctx: BuildContext,
  sources: DebianSuiteSource[],
  components: string[],
  keyring: string,
  cache: string,
): Promise<void> {
  const keyInRoot = "/tmp/templar-archive-keyring.gpg";
  const listInRoot = "/tmp/templar-sources.list";
  await replaceFile(ctx.root, keyInRoot, "");
  await replaceFile(ctx.root, listInRoot, `${sourceLines(sources, components, keyInRoot).join("\n")}\n`);
  await mkdir(join(cache, "partial"), { recursive: true, mode: 0o700 });
  const apt = [
    "apt-get -q",
    `-o Dir::Etc::SourceList=${listInRoot} -o Dir::Etc::SourceParts=/nonexistent`,
    "-o Acquire::Retries=3 -o Acquire::Languages=none -o APT::Sandbox::User=root",
  ].join(" ");
  try {
    await runInRoot(
      ctx.root,
      `${apt} update && ${apt} -y -o Dpkg::Options::=--force-confold -o Dpkg::Options::=--force-unsafe-io dist-upgrade`,
      {
        what: "apt-get (update pockets)",
        env: buildEnv({ DEBIAN_FRONTEND: "noninteractive" }),
        signal: ctx.signal,
        onLine: ctx.log,
        denyServices: true,
        binds: [
          { source: keyring, target: keyInRoot, readOnly: true },
          { source: cache, target: "/var/cache/apt/archives" },
        ],
      },
    );
  } finally {
    await removeInRoot(ctx.root, keyInRoot);
    await removeInRoot(ctx.root, listInRoot);
  }
  await replaceFile(ctx.root, "/etc/apt/sources.list", `${sourceLines(sources, components).join("\n")}\n`);
}

/**
 * The archive's current InRelease, verified with gpgv against the keyring, as a sha256 for the
 * snapshot key; undefined (no snapshot use) when it cannot be fetched or verified.
 */
async function currentInRelease(
  mirror: string,
  suite: string,
  keyring: string,
  ctx: Pick<BuildContext, "signal">,
) {
  const uri = `${mirror}/dists/${suite}/InRelease`;
  let bytes: Buffer;
  try {
    if (uri.startsWith("file://")) bytes = await readFile(new URL(uri));
    else {
      const response = await fetch(uri, {
        signal: AbortSignal.any([ctx.signal, AbortSignal.timeout(30_000)]),
      });
      if (!response.ok) return undefined;
      bytes = Buffer.from(await response.arrayBuffer());
    }
  } catch {
    return undefined;
  }
  const dir = await mkdtemp(join(tmpdir(), "templar-inrelease-"));
  try {
    await writeFile(join(dir, "InRelease"), bytes);
    await runTool("gpgv", ["--keyring", keyring, join(dir, "InRelease")], {
      what: "gpgv InRelease",
      signal: ctx.signal,
    });
  } catch {
    return undefined;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return { uri, sha256: createHash("sha256").update(bytes).digest("hex") };
}

async function countFetched(file: string): Promise<{ files: number; bytes: number }> {
  const lines = (await readFile(file, "utf8").catch(() => "")).split("\n").filter(Boolean);
  return { files: lines.length, bytes: lines.reduce((sum, line) => sum + Number.parseInt(line, 10), 0) };
}

/** The regular files in `dir` (a symlink there is not followed: it could lead out of the root). */
async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  return entries
    .filter((e) => e.isFile())
    .map((e) => e.name)
    .sort()
    .map((n) => join(dir, n));
}

/** The program that will run: the stage line names it (a first run takes minutes, silently). */
function describe(config: Config, ctx: BuildContext): string {
  const tool = ctx.bootstrapTool ?? (have("mmdebstrap") ? "mmdebstrap" : "debootstrap");
  return `${tool} ${config.suite} (a snapshot is reused when nothing changed; a first run takes minutes)`;
}

export const debootstrap = defineSource({
  name: "debootstrap",
  schema: DebootstrapConfig,
  describe,
  populate,
  probe,
});
