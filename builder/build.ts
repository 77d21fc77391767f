import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { UserError } from "../common/errors.js";
import type { Format, HostMetaFormat } from "../common/formats.js";
import type { Signer } from "../common/signing/signer.js";
import { archProblem } from "./arch.js";
import { type BootTestOptions, type BootTestReport, bootTest, failureLine } from "./boot-test/boot-test.js";
import { hostProblem } from "./boot-test/container.js";
import { preferredArtifact } from "./boot-test/targets.js";
import { mountsUnder } from "./chroot.js";
import type { BuildContext } from "./context.js";
import { familyOf } from "./family/index.js";
import { clampShadowDates } from "./family/presets/common.js";
import { makeStaging, publishOutput, removeStaging } from "./output.js";
import { packTemplate } from "./pack/pack.js";
import { formatPlace, type Recipe } from "./recipe/schema.js";
import { sourceMethods } from "./sources/index.js";
import { stepKinds } from "./steps/index.js";
import { AUTO_VERSION, distroRelease, nextVersion, versionsInDir } from "./version-auto.js";

export interface BuildOptions {
  outDir: string;
  /** Package cache shared by all builds (default DEFAULT_CACHE_DIR). */
  cacheDir?: string;
  formats?: Format[];
  /** Host metadata tarballs (with --formats lxc/incus); the recipe's when formats is not given. */
  meta?: HostMetaFormat[];
  mirror?: string;
  /** The Debian security archive (else from the host's apt sources or the mirror's sibling). */
  securityMirror?: string;
  /** Force a Debian bootstrap tool (else mmdebstrap when installed). */
  bootstrapTool?: "mmdebstrap" | "debootstrap";
  /** SOURCE_DATE_EPOCH as the user gave it, and where it came from (else the recipe's, else the packages'). */
  sourceDateEpoch?: number;
  sourceDateEpochFrom?: "option" | "environment";
  /** Host apt configuration to find a mirror in (default /etc/apt). */
  aptDir?: string;
  /** false: always run the source tool, never reuse a root snapshot from the cache. */
  snapshots?: boolean;
  /** Where the temporary build directory is made (default: os.tmpdir()). */
  workParent?: string;
  signal?: AbortSignal;
  /**
   * Boot-test the packed template before its output appears (`--test`): a failed check fails
   * the build and leaves no output. Its own signal and work directory come from this build's.
   */
  test?: Omit<BootTestOptions, "signal" | "workParent">;
  /** Sign the manifest and each artifact (<file>.asc) before the output appears. */
  signer?: Signer | null;
  /** Also write the SBOMs (CycloneDX 1.6 and SPDX 2.3 JSON) beside each manifest. */
  sbom?: boolean;
  /** Stage changes ("source", "steps", "inventory", "pack", "test") and tool output lines. */
  onStage?: (stage: string, note?: string) => void;
  onLine?: (line: string) => void;
  onPackProgress?: (tarBytes: number, entries: number) => void;
  /**
   * Versions of the template already taken elsewhere (the registry it will be pushed to), for
   * `version: auto`; versions in `outDir` are always counted too.
   */
  takenVersions?: (name: string) => Promise<string[]>;
}

export interface BuildResult {
  recipe: string;
  name: string;
  version: string;
  /** The distro's point release read from the root (with `version: auto`). */
  distroRelease?: string;
  arch: string;
  manifestPath: string;
  files: Partial<Record<Format, string>>;
  /** The .asc files written (none without a signer). */
  signatures: string[];
  /** The SBOM files written beside the manifest (with the `sbom` option). */
  sbom: string[];
  tarSha256: string;
  sourceDateEpoch: number;
  /** Where the SOURCE_DATE_EPOCH came from: option, environment, recipe, packages, now. */
  sourceDateEpochFrom: string;
  packages: number;
  /** Package files downloaded by this build (the rest came from the cache). */
  fetched?: { files: number; bytes: number };
  warnings: string[];
  /** The boot test's report, with --test. */
  test?: BootTestReport;
  seconds: number;
}

export const DEFAULT_CACHE_DIR = "/var/cache/templar";

/**
 * Builds one template: source -> steps -> inventory -> pack, in a temporary directory that is
 * always removed. Output appears in `outDir` only when everything succeeded (packed into a
 * staging directory there, then renamed: artifacts first, the manifest last).
 */
export async function buildTemplate(recipe: Recipe, options: BuildOptions): Promise<BuildResult> {
  const started = Date.now();
  const family = familyOf(recipe.distro);
  const problem = archProblem(recipe.arch);
  if (problem) throw new UserError(`${recipe.path}: ${recipe.name}: ${problem}`);
  const signal = options.signal ?? new AbortController().signal;
  const stage = (name: string, note?: string) => options.onStage?.(name, note);
  const outDir = resolve(options.outDir);
  // Said now, not after minutes of bootstrapping.
  const cannotTest = options.test ? hostProblem() : undefined;
  if (cannotTest)
    throw new UserError(`${recipe.path}: ${recipe.name}: --test: cannot boot-test here: ${cannotTest}`);
  await mkdir(outDir, { recursive: true });

  let sde = options.sourceDateEpoch;
  let sdeFrom: string = options.sourceDateEpochFrom ?? "option";
  if (sde === undefined && recipe.created !== undefined) {
    sde = recipe.created;
    sdeFrom = "recipe";
  }

  const work = await mkdtemp(join(options.workParent ?? tmpdir(), "templar-build-"));
  let staging: string | undefined;
  try {
    const root = join(work, "rootfs");
    await mkdir(root, { mode: 0o755 });
    const ctx: BuildContext = {
      root,
      recipe,
      cacheDir: resolve(options.cacheDir ?? DEFAULT_CACHE_DIR),
      mirror: options.mirror,
      aptDir: options.aptDir ?? "/etc/apt",
      securityMirror: options.securityMirror,
      bootstrapTool: options.bootstrapTool,
      sourceDateEpoch: sde,
      snapshots: options.snapshots,
      signal,
      log: (line) => options.onLine?.(line),
    };
    const method = sourceMethods[recipe.source.method]!;
    stage("source", method.describe?.(recipe.source.config, ctx) ?? method.name);
    const source = await method.populate(recipe.source.config, ctx);
    checkAborted(signal);

    // Decided once the root exists, before anything is packed.
    let version = recipe.version;
    let release: string | undefined;
    if (version === AUTO_VERSION) {
      const found = await distroRelease(recipe.distro, root, source.manifest);
      release = found.release;
      const taken = [
        ...(await versionsInDir(outDir, recipe.name)),
        ...((await options.takenVersions?.(recipe.name)) ?? []),
      ];
      version = nextVersion(found.prefix, taken);
      stage("version", `${version} (${recipe.distro} ${release})`);
    }

    for (const [index, step] of recipe.steps.entries()) {
      stage("steps", `${index + 1}/${recipe.steps.length} ${step.kind} (${formatPlace(step.place)})`);
      await stepKinds[step.kind]!.run(step.config, { ...ctx, family, place: step.place });
      checkAborted(signal);
    }

    stage("inventory", family.inventory.name);
    const packages = await family.inventory.packages(root);
    if (sde === undefined) {
      sde = await family.inventory.newestPackageDate(root);
      sdeFrom = "packages";
    }
    if (sde === undefined) {
      sde = Math.floor(Date.now() / 1000);
      sdeFrom = "now";
    }

    await clampShadowDates(root, sde);

    stage(
      "pack",
      [
        ...(options.formats ?? recipe.formats ?? ["tar.zst", "tar.gz"]),
        ...((options.formats ? options.meta : recipe.meta) ?? []),
      ].join(", "),
    );
    staging = await makeStaging(outDir);
    const flavour = recipe.flavour ? `, ${recipe.flavour}` : "";
    const packed = await packTemplate({
      rootfs: root,
      outDir: staging,
      name: recipe.name,
      version,
      formats: options.formats ?? recipe.formats,
      meta: options.formats ? options.meta : recipe.meta,
      sourceDateEpoch: sde,
      onProgress: options.onPackProgress,
      manifestFields: {
        distro: recipe.distro,
        release: recipe.release,
        arch: recipe.arch,
        ...(recipe.flavour ? { flavour: recipe.flavour } : {}),
        ...(release ? { distroRelease: release } : {}),
        description: recipe.description ?? `${recipe.distro} ${recipe.release} ${recipe.arch}${flavour}`,
        recipe: {
          path: recipe.path,
          sha256: recipe.sha256,
          ...(recipe.bases.length ? { extends: recipe.bases } : {}),
        },
        source: source.manifest,
        packages,
      },
    });
    checkAborted(signal);
    // The boot test runs on what ships (the packed artifact, extracted as pct extracts it),
    // while the output still sits in the staging directory.
    let test: BootTestReport | undefined;
    if (options.test) {
      const artifact = preferredArtifact(packed.files)!;
      stage("test", basename(artifact));
      test = await bootTest(
        {
          label: `${recipe.name}-${version}`,
          source: { kind: "archive", path: artifact },
          distro: recipe.distro,
        },
        { ...options.test, signal, workParent: options.workParent },
      );
      checkAborted(signal);
      if (!test.ok) throw new UserError(`${recipe.path}: ${recipe.name}: ${failureLine(test)}`);
    }
    const { manifestPath, files, signatures, sbom } = await publishOutput(packed, outDir, {
      signer: options.signer,
      sbom: options.sbom,
    });
    return {
      recipe: recipe.path,
      name: recipe.name,
      version,
      ...(release ? { distroRelease: release } : {}),
      arch: recipe.arch,
      manifestPath,
      files,
      signatures,
      sbom,
      tarSha256: packed.manifest.rootfs.tarSha256,
      sourceDateEpoch: sde,
      sourceDateEpochFrom: sdeFrom,
      packages: packages.length,
      fetched: source.fetched,
      warnings: packed.warnings,
      ...(test ? { test } : {}),
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    await removeStaging(staging);
    await removeWorkDir(work);
  }
}

function checkAborted(signal: AbortSignal): void {
  if (signal.aborted) throw new UserError("interrupted", 130);
}

/**
 * Removes the build directory. Tools run in private mount namespaces, so nothing should be
 * mounted here; if something is (a tool run outside them), it is unmounted first and
 * `rm --one-file-system` makes sure a stray bind mount can never take host files with it.
 */
async function removeWorkDir(work: string): Promise<void> {
  for (const mount of mountsUnder(work).reverse()) spawnSync("umount", ["-l", mount]);
  // Never fall back to a recursive delete that crosses file systems.
  spawnSync("rm", ["-rf", "--one-file-system", work]);
  // A leftover here is worth a loud message, not a silent disk leak.
  if ((await readdir(work).catch(() => null)) !== null) {
    process.stderr.write(`templar: warning: could not remove build directory ${work}\n`);
  }
}
