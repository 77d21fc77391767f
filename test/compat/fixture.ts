import { type SpawnSyncReturns, spawnSync } from "node:child_process";
import { chmod, mkdir, readFile, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type Manifest, parseManifest } from "../../common/manifest.js";
import { startTestRegistry, type TestRegistry } from "../helpers/registry.js";
import { runProcess, templar } from "../helpers/registry-process.js";

/**
 * What the host-compatibility tests share: an in-process registry on 127.0.0.1:0 with an index
 * key made by `templar key generate`, a maintainer key pair, and templates packed and signed by
 * `templar pack --sign-key` and pushed by `templar push`, as a maintainer would.
 */
export interface Keys {
  secret: string;
  public: string;
  fingerprint: string;
}

export interface CompatRegistry extends TestRegistry {
  /** Push, delete and pull. */
  token: string;
  indexKey: Keys;
}

/** `templar key generate`: returns the files and the fingerprint it printed. */
export async function generateKey(prefix: string, name: string): Promise<Keys> {
  const r = await templar(["key", "generate", "--name", name, "--out", prefix], {
    TEMPLAR_SIGN_PASSPHRASE: "",
  });
  if (r.code !== 0) throw new Error(`key generate: ${r.stderr}`);
  const fingerprint = /fingerprint: ([0-9A-F]{40})/.exec(r.stdout)![1]!;
  return { secret: `${prefix}.key.asc`, public: `${prefix}.pub.asc`, fingerprint };
}

export async function startCompatRegistry(extra: Record<string, unknown> = {}): Promise<CompatRegistry> {
  let indexKey: Keys | undefined;
  const registry = await startTestRegistry(
    { tokens: { maintainer: ["push:*", "delete:*", "pull:*"] }, gc: { interval: 0 } },
    async (dir) => {
      indexKey = await generateKey(join(dir, "index"), "Test Registry Index");
      return {
        indexKey: { file: "index.key.asc" }, // relative to the config file
        compat: { maintainer: "Test Templates <templates@example.org>" },
        ...extra,
      };
    },
  );
  return { ...registry, token: registry.tokens.maintainer!, indexKey: indexKey! };
}

/**
 * A small root filesystem that passes pct's checks (an `sbin` entry, at least 10 members) and
 * looks like a distribution to vzctl and pct (etc/os-release).
 */
export async function makeRootfs(dir: string, seed: string): Promise<void> {
  for (const d of ["bin", "sbin", "etc", "dev", "root", "tmp", "usr/bin", "usr/sbin", "var/log"]) {
    await mkdir(join(dir, d), { recursive: true });
  }
  await writeFile(join(dir, "etc/os-release"), `ID=debian\nVERSION_ID="13"\nPRETTY_NAME="test ${seed}"\n`);
  await writeFile(join(dir, "etc/hostname"), "localhost\n");
  await writeFile(join(dir, "sbin/init"), "#!/bin/sh\nexec sleep infinity\n");
  await chmod(join(dir, "sbin/init"), 0o755);
  await writeFile(join(dir, "usr/bin/hello"), `#!/bin/sh\necho ${seed}\n`);
  await chmod(join(dir, "usr/bin/hello"), 0o755);
  await chmod(join(dir, "tmp"), 0o1777);
  await symlink("../usr/bin/hello", join(dir, "bin/hello"));
  await writeFile(join(dir, "dev/null-placeholder"), ""); // pct excludes ./dev/*
  await writeFile(join(dir, "var/log/seed"), seed.repeat(2000));
}

export interface Packed {
  outDir: string;
  manifestPath: string;
  manifest: Manifest;
  file: (format: string) => string;
}

/** `templar pack` (signed with `signKey` when given) of a fresh rootfs; `epoch` sets `created`. */
export async function packRootfs(
  work: string,
  name: string,
  version: string,
  options: { signKey?: string; epoch: number; formats?: string },
): Promise<Packed> {
  const tree = join(work, `tree-${name}-${version}`);
  await makeRootfs(tree, `${name}-${version}`);
  const outDir = join(work, `out-${name}-${version}`);
  const args = ["pack", tree, "--name", name, "--version", version, "--out", outDir];
  args.push("--formats", options.formats ?? "gz,zst", "--source-date-epoch", String(options.epoch));
  if (options.signKey) args.push("--sign-key", options.signKey);
  const r = await templar(args, { TEMPLAR_SIGN_PASSPHRASE: "" });
  if (r.code !== 0) throw new Error(`templar pack: ${r.stderr}`);
  const manifestPath = join(outDir, `${name}-${version}.manifest.json`);
  const manifest = parseManifest(await readFile(manifestPath), manifestPath);
  return { outDir, manifestPath, manifest, file: (format) => join(outDir, `${name}-${version}.${format}`) };
}

export async function push(reg: CompatRegistry, outDir: string) {
  const r = await templar(["push", outDir, "--registry", reg.url, "--token", reg.token]);
  if (r.code !== 0) throw new Error(`templar push: ${r.stderr}`);
  return r;
}

/** `templar pull <ref> --registry <url> --dest <dest> --keyring <keyring> [more...]`: a verifying host. */
export function pullSigned(
  registryUrl: string,
  ref: string,
  dest: string,
  keyring: string,
  ...more: string[]
) {
  return templar(["pull", ref, "--registry", registryUrl, "--dest", dest, "--keyring", keyring, ...more]);
}

/** A throwaway GNUPGHOME for stock gpg / gpgv runs. */
export async function gpgHome(dir: string): Promise<(...args: string[]) => SpawnSyncReturns<string>> {
  const home = join(dir, `gnupg-${Math.random().toString(36).slice(2)}`);
  await mkdir(home, { mode: 0o700 });
  return (...args: string[]) =>
    spawnSync("gpg", ["--homedir", home, "--batch", "--yes", ...args], { encoding: "utf8" });
}

/**
 * Runs a program without blocking the event loop: the registry under test runs in this process,
 * so a spawnSync'd client (wget) would wait for a server that cannot answer.
 */
export async function runAsync(
  cmd: string,
  args: string[],
): Promise<{ status: number; stdout: string; stderr: string }> {
  const { code, stdout, stderr } = await runProcess(cmd, args);
  return { status: code, stdout, stderr };
}
