import { readdir, readFile, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import { ExitCode, UserError } from "../../common/errors.js";
import { FORMATS, type Format } from "../../common/formats.js";
import { parseManifest } from "../../common/manifest.js";
import { artifactFileName } from "../../common/manifest-files.js";
import type { BootTestTarget } from "./boot-test.js";

/** Fastest to extract first: zstd, then gzip, then xz. */
const PREFERRED: Format[] = ["tar.zst", "tar.gz", "tar.xz"];

/**
 * What `templar test PATH` boots: a template file (`.tar.zst`, `.tar.gz`, `.tar.xz`, its
 * manifest beside it when there is one), a manifest (its artifact beside it), an out/ directory
 * or a build's output (every manifest in it), or a root filesystem directory (copied first).
 */
export async function resolveTargets(path: string): Promise<BootTestTarget[]> {
  const info = await stat(path).catch(() => undefined);
  if (!info) throw new UserError(`${path}: no such file or directory`, ExitCode.notFound);
  if (info.isDirectory()) {
    const names = await readdir(path);
    const manifests = names.filter((n) => n.endsWith(".manifest.json")).sort();
    if (manifests.length > 0) return Promise.all(manifests.map((m) => fromManifest(join(path, m))));
    if (names.includes("etc") && (names.includes("usr") || names.includes("sbin")))
      return [{ label: path, source: { kind: "directory", path } }];
    throw new UserError(`${path}: neither templates (*.manifest.json) nor a root filesystem (etc/, usr/)`);
  }
  if (path.endsWith(".manifest.json")) return [await fromManifest(path)];
  const format = FORMATS.find((f) => path.endsWith(`.${f}`));
  if (format || path.endsWith(".tar")) {
    const manifestPath = format ? path.slice(0, -format.length - 1) + ".manifest.json" : undefined;
    const manifest = manifestPath ? await readManifest(manifestPath).catch(() => undefined) : undefined;
    return [{ label: basename(path), source: { kind: "archive", path }, distro: manifest?.distro }];
  }
  throw new UserError(`${path}: not a template (.tar.zst, .tar.gz, .tar.xz), manifest or directory`);
}

async function readManifest(path: string) {
  return parseManifest(await readFile(path), path);
}

async function fromManifest(path: string): Promise<BootTestTarget> {
  const manifest = await readManifest(path);
  const dir = join(path, "..");
  for (const format of PREFERRED) {
    if (!manifest.artifacts.some((a) => a.format === format)) continue;
    const file = join(dir, artifactFileName(manifest.name, manifest.version, format));
    if (await stat(file).catch(() => undefined))
      return {
        label: `${manifest.name}-${manifest.version}`,
        source: { kind: "archive", path: file },
        distro: manifest.distro,
      };
  }
  throw new UserError(`${path}: none of its artifacts is beside it`);
}

/** The artifact of a freshly packed template that the boot test extracts (fastest format). */
export function preferredArtifact(files: Partial<Record<Format, string>>): string | undefined {
  for (const format of PREFERRED) if (files[format]) return files[format];
  return undefined;
}
