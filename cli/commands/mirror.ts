import { rmSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RegistryClient } from "../../client/http.js";
import { type MirrorTarget, mirror } from "../../client/mirror.js";
import { ExitCode, usageError } from "../../common/errors.js";
import { createProgress } from "../../common/progress.js";
import { parseCommandArgs } from "../args.js";
import type { Command } from "../command.js";
import { registryClient } from "../registry-flags.js";
import { flagOrEnv, storageEnvironment } from "../settings.js";
import { clearingBarOnError } from "../terminal.js";

const help = `Usage: templar mirror <source-registry> <destination> [--filter GLOB] [--keep N]
                      [--token T] [--source-token T] [--json]

Copies templates from a registry to <destination>: another registry (http:// or https://), a
directory, or a bucket (s3://bucket/prefix) in the layout 'templar serve --storage' serves.
Manifests, their signatures and the artifacts' signatures are copied as they are (a mirror never
signs anything), every blob only after its sha256 matched, and a version appears in the
destination only once all of it is there. Run it again to keep the copy in sync: versions the
destination has are skipped; tags are moved to where the source has them. Nothing is deleted
from the destination. A version the destination has with other content is reported and the
run goes on; the exit code is then 1.

Options:
  --filter GLOB        template names to copy, '*' and '?' as in token scopes (default: all)
  --keep N             copy only the N newest versions of each template
  --token T            token for a destination registry, scopes push and pull (default: $TEMPLAR_TOKEN)
  --source-token T     token for the source, when it does not allow anonymous pulls
                       (default: $TEMPLAR_SOURCE_TOKEN)
  --json               print one JSON object per version, then one for the run

A bucket destination takes its endpoint and credentials from the environment as templar serve
does (TEMPLAR_S3_ENDPOINT, TEMPLAR_S3_REGION, TEMPLAR_S3_FORCE_PATH_STYLE, AWS_* credentials).`;

async function openTarget(
  destination: string,
  /** --token; registryClient falls back to TEMPLAR_TOKEN. */
  token: string | undefined,
  workDir: string,
): Promise<MirrorTarget> {
  if (/^https?:\/\//i.test(destination)) {
    const { RegistryMirrorTarget } = await import("../../client/mirror-to-registry.js");
    return new RegistryMirrorTarget(registryClient("mirror", { registry: destination, token }), workDir);
  }
  const { openStorage, storageBackends } = await import("../../registry/storage/backends.js");
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(destination)?.[1]?.toLowerCase();
  if (scheme && !storageBackends[`${scheme}:`]) {
    throw usageError(
      `mirror: destination ${destination}: unknown scheme ${scheme}:// (expected http://, https://, s3://, file:// or a directory)`,
    );
  }
  const [{ StoreMirrorTarget }, { Store }] = await Promise.all([
    import("../mirror-to-store.js"),
    import("../../registry/store/store.js"),
  ]);
  const driver = await openStorage(destination, { env: storageEnvironment() });
  await driver.check();
  return new StoreMirrorTarget(new Store(driver, { cacheTtlMs: 0 }), destination);
}

function parseKeep(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^[1-9]\d*$/.test(text))
    throw usageError(`mirror: --keep ${JSON.stringify(text)} is not a whole number >= 1`);
  return Number(text);
}

export const command: Command = {
  help,
  async run(argv) {
    const { values, positionals } = parseCommandArgs("mirror", argv, {
      filter: { type: "string" },
      keep: { type: "string" },
      token: { type: "string" },
      "source-token": { type: "string" },
      json: { type: "boolean" },
    });
    if (positionals.length !== 2)
      throw usageError("mirror: expected <source-registry> <destination> (see 'templar mirror --help')");
    const [from, to] = positionals as [string, string];
    const keep = parseKeep(values.keep);
    const source = registryClient("mirror", {
      registry: from,
      // Not TEMPLAR_TOKEN: that one is for the destination.
      token: flagOrEnv(values["source-token"], "TEMPLAR_SOURCE_TOKEN", ""),
    });
    // Downloads wait here until stored; removed at the end and on an interrupt (the destination
    // holds only whole versions either way).
    const workDir = await mkdtemp(join(tmpdir(), "templar-mirror-"));
    for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
      process.once(signal, () => {
        rmSync(workDir, { recursive: true, force: true });
        process.stderr.write(
          `\ntemplar: mirror interrupted (${signal}); the destination holds only complete versions\n`,
        );
        process.exit(130);
      });
    }
    try {
      return await mirrorAndReport(source, await openTarget(to, values.token, workDir), {
        workDir,
        filter: values.filter,
        keep,
        json: values.json ?? false,
      });
    } finally {
      await rm(workDir, { recursive: true, force: true });
    }
  },
};

/** Runs the mirror with a progress line, one line per version, and a summary; returns the exit code. */
async function mirrorAndReport(
  source: RegistryClient,
  target: MirrorTarget,
  options: { workDir: string; filter?: string; keep?: number; json: boolean },
): Promise<number> {
  const progress = createProgress(`mirror ${source.display}`, { enabled: !options.json });
  const result = await clearingBarOnError(() =>
    mirror(source, target, {
      workDir: options.workDir,
      filter: options.filter,
      keep: options.keep,
      onBytes: (bytes) => progress.update(bytes),
      onVersion: (v) => {
        if (options.json) process.stdout.write(`${JSON.stringify(v)}\n`);
        else if (v.status === "failed") process.stderr.write(`templar: ${v.error}\n`);
        else if (v.status === "copied")
          process.stderr.write(`copied ${v.name}@${v.version} (${v.blobs} blob(s))\n`);
      },
    }),
  );
  const failed = result.versions.filter((v) => v.status === "failed").length;
  const copied = result.versions.filter((v) => v.status === "copied").length;
  const summary = `${result.templates} template(s), ${copied} version(s) copied, ${result.versions.length - copied - failed} already there, ${failed} failed, ${result.tags.length} tag(s) set`;
  progress.finish();
  if (options.json) {
    process.stdout.write(
      `${JSON.stringify({ source: source.display, destination: target.display, ...result, failed })}\n`,
    );
  } else {
    process.stdout.write(`mirror ${source.display} -> ${target.display}: ${summary}\n`);
  }
  return failed > 0 ? ExitCode.failure : ExitCode.ok;
}
