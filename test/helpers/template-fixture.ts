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
  if (result.code !== 0) throw new Error(`templar pack failed (${result.code}): ${result.stderr}`);
  const manifestPath = join(outDir, `${name}-${version}.manifest.json`);
  const manifest = parseManifest(await readFile(manifestPath), manifestPath);
  return { outDir, manifestPath, manifest, gz: join(outDir, `${name}-${version}.tar.gz`) } as PackedTemplate;
}
