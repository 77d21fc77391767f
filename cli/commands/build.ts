import { archProblem } from "../../builder/arch.js";
import { DEFAULT_TEST_TIMEOUT } from "../../builder/boot-test/boot-test.js";
import { checkLine, headerLine, summaryLine } from "../../builder/boot-test/format.js";
import { type BuildResult, buildTemplate, DEFAULT_CACHE_DIR } from "../../builder/build.js";
import { loadRecipe } from "../../builder/load-recipe.js";
import type { Recipe } from "../../builder/recipe/schema.js";
import { loadLocalTemplate, pushTemplate } from "../../client/push.js";
import { usageError } from "../../common/errors.js";
import { parsePackOutputs } from "../../common/formats.js";
import { createProgress, formatBytes, type Progress } from "../../common/progress.js";
import { openSigner } from "../../common/signing/signer.js";
import { parseCommandArgs } from "../args.js";
import { newestManifest, registryVersions, whatChanged } from "../build-registry.js";
import type { Command } from "../command.js";
import { preflight } from "../preflight.js";
import { registryClient } from "../registry-flags.js";
import { env, flagOrEnv, sourceDateEpoch } from "../settings.js";

const help = `Usage: templar build <recipe>... [options]

Builds each recipe (every arch of its matrix this host can run) into a template:
source -> steps -> inventory -> pack. Output appears only when a build succeeds.

Options:
  --out DIR                 output directory (default: out)
  --formats LIST            zst,gz,xz and lxc, incus (default: the recipe's formats, else zst,gz)
  --mirror URL              Debian mirror (default: $TEMPLAR_DEBIAN_MIRROR, else the host's apt sources)
  --cache DIR               package cache reused by every build (default: $TEMPLAR_CACHE, else ${DEFAULT_CACHE_DIR})
  --source-date-epoch N     clamp for mtimes and the manifest's created (default: $SOURCE_DATE_EPOCH,
                            else the recipe's created:, else the newest installed package's date)
  --no-snapshot             run mmdebstrap/debootstrap even when the cache holds the root of an
                            earlier build with the same inputs (same settings and archive state)
  --arch ARCH               build only this arch of a matrix (an error if the host cannot run it)
  --test                    boot each packed template in a throwaway container before its output
                            appears and run 'templar test's checks: a failed check fails the build
                            and leaves no output (needs root and systemd-nspawn)
  --test-timeout SECONDS    time for boot, network and sshd in that test (default ${DEFAULT_TEST_TIMEOUT})
  --sign-key FILE           sign each manifest and artifact (<file>.asc) with this armoured
                            OpenPGP secret key (default: $TEMPLAR_SIGN_KEY)
  --passphrase-file FILE    passphrase of a protected key (else $TEMPLAR_SIGN_PASSPHRASE)
  --sign-with gpg:KEYID     sign with the gpg agent's key instead of a key file
  --sbom                    also write the bill of materials beside each manifest, with the
                            output: <name>-<version>.cdx.json (CycloneDX 1.6) and .spdx.json
                            (SPDX 2.3), every package with its purl
  --push URL                push each built template to this registry (token: --token or
                            $TEMPLAR_TOKEN); with version: auto the serial is the next one free
                            there (and in --out)
  --token T                 push token (default: $TEMPLAR_TOKEN); never printed
  --if-changed              with --push: build only when the registry's newest version of the
                            template came from another recipe or other upstream inputs (say so
                            and exit 0 otherwise): what a nightly job runs
  --json                    print the results as JSON on stdout
  -v, --verbose             show the output of mmdebstrap/debootstrap and of steps
`;

async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs("build", argv, {
    out: { type: "string" },
    formats: { type: "string" },
    mirror: { type: "string" },
    cache: { type: "string" },
    "source-date-epoch": { type: "string" },
    arch: { type: "string" },
    test: { type: "boolean" },
    "test-timeout": { type: "string" },
    "no-snapshot": { type: "boolean" },
    "sign-key": { type: "string" },
    "passphrase-file": { type: "string" },
    "sign-with": { type: "string" },
    json: { type: "boolean" },
    sbom: { type: "boolean" },
    push: { type: "string" },
    token: { type: "string" },
    "if-changed": { type: "boolean" },
    verbose: { type: "boolean", short: "v" },
  });
  if (positionals.length === 0)
    throw usageError("build: expected at least one recipe file (see 'templar build --help')");
  if (values["if-changed"] && values.push === undefined)
    throw usageError("build: --if-changed needs --push URL (the registry holds what was built before)");
  const client =
    values.push === undefined
      ? undefined
      : registryClient("build", { registry: values.push, token: values.token });
  const outputs = values.formats ? parsePackOutputs(values.formats.split(",")) : undefined;
  const sde = sourceDateEpoch(values["source-date-epoch"]);
  const tool = env("TEMPLAR_BOOTSTRAP_TOOL");
  if (tool !== undefined && tool !== "mmdebstrap" && tool !== "debootstrap")
    throw usageError(`TEMPLAR_BOOTSTRAP_TOOL must be mmdebstrap or debootstrap, not ${JSON.stringify(tool)}`);
  const json = Boolean(values.json);
  const testTimeout = values["test-timeout"];
  if (testTimeout !== undefined && (!/^\d+$/.test(testTimeout) || Number(testTimeout) < 1))
    throw usageError(`build: --test-timeout: expected whole seconds, got ${JSON.stringify(testTimeout)}`);
  // Opened before any build: a wrong passphrase fails now, not after minutes of bootstrapping.
  const signer = await openSigner({
    keyFile: flagOrEnv(values["sign-key"], "TEMPLAR_SIGN_KEY"),
    passphraseFile: values["passphrase-file"],
    passphrase: env("TEMPLAR_SIGN_PASSPHRASE"),
    signWith: values["sign-with"],
  });
  const say = (line: string) => {
    if (!json) process.stderr.write(`${line}\n`);
  };

  // Validate every recipe before building any.
  const recipes: Recipe[] = [];
  for (const file of positionals) {
    const expanded = await loadRecipe(file);
    for (const recipe of expanded) {
      if (values.arch && recipe.arch !== values.arch) continue;
      const problem = archProblem(recipe.arch);
      if (problem && expanded.length > 1 && !values.arch) {
        say(`templar build: skipping ${recipe.name}: ${problem}`);
        continue;
      }
      recipes.push(recipe);
    }
  }
  if (recipes.length === 0)
    throw usageError(`build: nothing to build${values.arch ? ` for arch ${values.arch}` : ""}`);
  // Root and every program the recipes' sources need, before any work (a bootstrap takes minutes).
  preflight("build", { quiet: json, sources: new Set(recipes.map((r) => r.source.method)) });

  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const results: BuildResult[] = [];
  const skipped: { recipe: string; name: string; skipped: string }[] = [];
  const cacheDir = flagOrEnv(values.cache, "TEMPLAR_CACHE", DEFAULT_CACHE_DIR) ?? DEFAULT_CACHE_DIR;
  const mirror = flagOrEnv(values.mirror, "TEMPLAR_DEBIAN_MIRROR");
  try {
    for (const recipe of recipes) {
      const label = `build ${recipe.name}`;
      if (client && values["if-changed"]) {
        const newest = await newestManifest(client, recipe.name);
        const changed = await whatChanged(recipe, newest, {
          recipe,
          cacheDir,
          ...(mirror ? { mirror } : {}),
          aptDir: "/etc/apt",
          securityMirror: env("TEMPLAR_DEBIAN_SECURITY_MIRROR"),
          signal: controller.signal,
          log: () => {},
        });
        if (changed === null) {
          const why = `${newest!.name}@${newest!.version} in ${client.display} has the same recipe and upstream inputs`;
          say(`${label}: skipped: ${why}`);
          skipped.push({ recipe: recipe.path, name: recipe.name, skipped: why });
          continue;
        }
        say(`${label}: ${changed}`);
      }
      let progress: Progress | undefined;
      let lines = 0;
      const result = await buildTemplate(recipe, {
        outDir: values.out ?? "out",
        cacheDir,
        formats: outputs?.formats,
        meta: outputs?.meta,
        mirror,
        ...(client ? { takenVersions: (name: string) => registryVersions(client, name) } : {}),
        sourceDateEpoch: sde?.value,
        sourceDateEpochFrom: sde?.from,
        securityMirror: env("TEMPLAR_DEBIAN_SECURITY_MIRROR"),
        bootstrapTool: tool,
        snapshots: !values["no-snapshot"],
        signal: controller.signal,
        signer,
        sbom: values.sbom ?? false,
        onStage: (stage, note) => {
          progress?.finish();
          lines = 0;
          progress = createProgress(`${label}: ${stage}${note ? ` ${note}` : ""}`, {
            unit: stage === "pack" ? "bytes" : "items",
            enabled: !json && (process.stderr.isTTY || stage === "pack"),
          });
          if (!process.stderr.isTTY) say(`${label}: ${stage}${note ? ` ${note}` : ""}`);
        },
        onLine: (line) => {
          if (values.verbose && !json) process.stderr.write(`  ${line}\n`);
          else progress?.update(++lines, line.slice(0, 60));
        },
        onPackProgress: (bytes) => progress?.update(bytes),
        test: values.test
          ? {
              timeoutSeconds: testTimeout === undefined ? undefined : Number(testTimeout),
              onStart: (info) => {
                progress?.finish();
                progress = undefined;
                say(headerLine(info));
              },
              onCheck: (check) => say(checkLine(check)),
              onLine: values.verbose && !json ? (line) => process.stderr.write(`  | ${line}\n`) : undefined,
            }
          : undefined,
      });
      progress?.finish();
      if (signer)
        say(`${result.name}: signed by ${signer.description}: ${result.signatures.length} .asc files`);
      if (result.sbom.length) say(`${result.name}: SBOM ${result.sbom.join(", ")}`);
      results.push(result);
      if (result.test) say(summaryLine(result.test));
      const fetched = result.fetched
        ? `, downloaded ${result.fetched.files} packages (${formatBytes(result.fetched.bytes)})`
        : "";
      say(
        `${result.name} ${result.version}: ${result.packages} packages, tar sha256 ${result.tarSha256.slice(0, 16)}..., ` +
          `SOURCE_DATE_EPOCH ${result.sourceDateEpoch} (${result.sourceDateEpochFrom})${fetched}, ${result.seconds.toFixed(1)}s`,
      );
      for (const path of [...Object.values(result.files), result.manifestPath]) say(`  ${path}`);
      if (client) {
        const pushed = await pushTemplate(client, await loadLocalTemplate(result.manifestPath));
        for (const note of pushed.notes) say(`templar: note: ${note}`);
        say(`pushed ${pushed.name}@${pushed.version} to ${client.display}`);
      }
    }
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  if (json) process.stdout.write(`${JSON.stringify([...results, ...skipped], null, 2)}\n`);
  return 0;
}

export const command: Command = { help, run };
