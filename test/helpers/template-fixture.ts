import { randomBytes } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type Manifest, parseManifest } from "../../common/manifest.js";
import { templar } from "./registry-process.js";

/**
 * A small root filesystem for registry tests: a few text files and `randomKiB` of random
 * (incompressible) data, so the compressed artifact is big enough to cut connections inside it.
 */
export async function makeTree(dir: string, randomKiB: number, seed = "x"): Promise<void> {
  await mkdir(join(dir, "etc"), { recursive: true });
  await mkdir(join(dir, "usr", "share", "data"), { recursive: true });
  await writeFile(join(dir, "etc", "os-release"), `ID=test\nVERSION_ID=1\nSEED=${seed}\n`);
  await writeFile(join(dir, "etc", "hostname"), "localhost\n");
  await writeFile(join(dir, "usr", "share", "data", "random.bin"), randomBytes(randomKiB * 1024));
}

export interface PackedTemplate {
  outDir: string;
  manifestPath: string;
  manifest: Manifest;
  /** Absolute path of the tar.gz artifact. */
  gz: string;
}

/** `templar pack <tree> --name --version --out` with tar.gz and tar.zst, as a maintainer would. */
export async function packTemplate(tree: string, outDir: string, name: string, version: string) {
  const result = await templar([
    "pack",
    tree,
    "--name",
    name,
    "--version",
    version,
    "--out",
    outDir,
    "--formats",
    "gz,zst",
  ]);
  if (result.code === 2 && result.stderr.includes("unknown command 'pack'")) {
    return packWithGnuTar(tree, outDir, name, version);
  }
  if (result.code !== 0) throw new Error(`templar pack failed (${result.code}): ${result.stderr}`);
  const manifestPath = join(outDir, `${name}-${version}.manifest.json`);
  const manifest = parseManifest(await readFile(manifestPath), manifestPath);
  return { outDir, manifestPath, manifest, gz: join(outDir, `${name}-${version}.tar.gz`) } as PackedTemplate;
}

/** Stand-in until the packer branch is merged: GNU tar, gzip -n and zstd, and a manifest. */
async function packWithGnuTar(tree: string, outDir: string, name: string, version: string) {
  const { execFileSync } = await import("node:child_process");
  const { sha256File } = await import("../../common/digest.js");
  const { serializeManifest } = await import("../../common/manifest.js");
  await mkdir(outDir, { recursive: true });
  const base = join(outDir, `${name}-${version}`);
  execFileSync("tar", [
    "--sort=name",
    "--numeric-owner",
    "--mtime=@0",
    "-C",
    tree,
    "-cf",
    `${base}.tar`,
    ".",
  ]);
  execFileSync("sh", [
    "-c",
    `gzip -n -6 -c '${base}.tar' > '${base}.tar.gz' && zstd -q -3 '${base}.tar' -o '${base}.tar.zst'`,
  ]);
  const tar = await sha256File(`${base}.tar`);
  const gz = await sha256File(`${base}.tar.gz`);
  const zst = await sha256File(`${base}.tar.zst`);
  const { rm } = await import("node:fs/promises");
  await rm(`${base}.tar`);
  const manifest = parseManifest(
    JSON.stringify({
      schemaVersion: 1,
      name,
      version,
      created: "2026-11-25T00:00:00Z",
      rootfs: { tarSha256: tar.hex, tarSize: tar.size, entries: 6 },
      artifacts: [
        { format: "tar.zst", digest: `sha256:${zst.hex}`, size: zst.size },
        { format: "tar.gz", digest: `sha256:${gz.hex}`, size: gz.size },
      ],
    }),
  );
  const manifestPath = `${base}.manifest.json`;
  await writeFile(manifestPath, serializeManifest(manifest));
  return { outDir, manifestPath, manifest, gz: `${base}.tar.gz` } as PackedTemplate;
}
