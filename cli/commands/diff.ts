import { lstat, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fetchManifest } from "../../client/host/pull.js";
import { type RegistryClient, templatePath } from "../../client/http.js";
import { DeltaIndexSchema, MAX_DELTA_INDEX_BYTES } from "../../common/delta.js";
import { ExitCode, UserError, usageError } from "../../common/errors.js";
import { MAX_MANIFEST_BYTES, type Manifest, parseManifest } from "../../common/manifest.js";
import { diffPackages } from "../../common/package-diff.js";
import { formatBytes } from "../../common/progress.js";
import { parseRef } from "../../common/reference.js";
import { parseCommandArgs } from "../args.js";
import type { Command } from "../command.js";
import { registryClient } from "../registry-flags.js";

const help = `Usage: templar diff <A> <B> [--registry URL] [--token T] [--json]

What changed from template version A to B: packages added, removed, upgraded and downgraded
(with both versions, from the manifests' package lists), the tar and artifact sizes, and the size
of the registry's delta patch from A to B when it has one. A and B are each a reference on the
registry (name@1.2.3, name@<tag>, name@<range>), a manifest file, or a build's out directory
holding one manifest.

  templar diff debian-12-x86_64-minimal@12.7.1 debian-12-x86_64-minimal@12.8.0 --registry URL
  templar diff out-old/ out-new/

Options:
  --registry URL   registry base URL (default: $TEMPLAR_REGISTRY), for references
  --token T        token, for registries without anonymous pull (default: $TEMPLAR_TOKEN)
  --json           print the comparison as JSON`;

interface Side {
  manifest: Manifest;
  /** Where it came from: "registry" or a path. */
  from: string;
}

async function localManifest(path: string): Promise<Manifest | null> {
  const info = await lstat(path).catch(() => null);
  if (!info) return null;
  let file = path;
  if (info.isDirectory()) {
    const found = (await readdir(path)).filter((f) => f.endsWith(".manifest.json")).sort();
    if (found.length !== 1)
      throw new UserError(
        `${path}: expected one *.manifest.json in the directory, found ${found.length ? found.join(", ") : "none"}`,
      );
    file = join(path, found[0]!);
  } else if (!info.isFile()) throw new UserError(`${path} is neither a manifest file nor a directory`);
  const bytes = await readFile(file);
  if (bytes.length > MAX_MANIFEST_BYTES) throw new UserError(`${file} is too large for a manifest`);
  return parseManifest(bytes, file);
}

export const command: Command = {
  help,
  async run(argv) {
    const { values, positionals } = parseCommandArgs("diff", argv, {
      registry: { type: "string" },
      token: { type: "string" },
      json: { type: "boolean" },
    });
    if (positionals.length !== 2)
      throw usageError("diff: expected two templates, A and B (see 'templar diff --help')");
    const remote: { client: RegistryClient | null } = { client: null };
    const side = async (arg: string): Promise<Side> => {
      const local = await localManifest(arg);
      if (local) return { manifest: local, from: arg };
      if (!arg.includes("@") && arg.includes("/"))
        throw new UserError(`diff: ${arg}: no such file or directory`, ExitCode.notFound);
      if (!arg.includes("@"))
        throw usageError(
          `diff: ${JSON.stringify(arg)} is neither a file, a directory nor a name@version reference`,
        );
      remote.client ??= registryClient("diff", values);
      return { manifest: (await fetchManifest(remote.client, parseRef(arg))).manifest, from: "registry" };
    };
    const a = await side(positionals[0]!);
    const b = await side(positionals[1]!);
    if (a.manifest.name !== b.manifest.name && !values.json)
      process.stderr.write(
        `templar: note: comparing two different templates (${a.manifest.name}, ${b.manifest.name})\n`,
      );

    const packages = diffPackages(a.manifest, b.manifest);
    let delta: { size: number; windowLog: number } | null = null;
    if (remote.client && b.from === "registry") {
      const body = await remote.client
        .getOptional(
          templatePath(b.manifest.name, b.manifest.version, "deltas"),
          "delta index",
          MAX_DELTA_INDEX_BYTES,
        )
        .catch(() => null);
      const index = body ? DeltaIndexSchema.safeParse(JSON.parse(body.toString("utf8"))) : null;
      const entry = index?.success
        ? index.data.deltas.find((d) => d.fromTarSha256 === a.manifest.rootfs.tarSha256)
        : undefined;
      if (entry) delta = { size: entry.size, windowLog: entry.windowLog };
    }
    const sizes = (m: Manifest) => ({
      tar: m.rootfs.tarSize,
      ...Object.fromEntries(m.artifacts.map((x) => [x.format, x.size])),
    });
    const result = {
      from: { name: a.manifest.name, version: a.manifest.version },
      to: { name: b.manifest.name, version: b.manifest.version },
      ...packages,
      sizes: { from: sizes(a.manifest), to: sizes(b.manifest) },
      delta,
    };
    if (values.json) {
      process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      return ExitCode.ok;
    }
    const lines = [`${a.manifest.name}@${a.manifest.version} -> ${b.manifest.name}@${b.manifest.version}`];
    const width = Math.max(
      0,
      ...[...packages.changed, ...packages.added, ...packages.removed].map(
        (p) => p.name.length + p.arch.length + 3,
      ),
    );
    const label = (p: { name: string; arch: string }) => `${p.name} (${p.arch})`.padEnd(width);
    for (const p of packages.changed) lines.push(`  ${p.kind.padEnd(10)} ${label(p)}  ${p.from} -> ${p.to}`);
    for (const p of packages.added) lines.push(`  ${"added".padEnd(10)} ${label(p)}  ${p.version}`);
    for (const p of packages.removed) lines.push(`  ${"removed".padEnd(10)} ${label(p)}  ${p.version}`);
    const up = packages.changed.filter((p) => p.kind === "upgraded").length;
    lines.push(
      `${up} upgraded, ${packages.changed.length - up} downgraded, ${packages.added.length} added, ${packages.removed.length} removed, ${packages.unchanged} unchanged`,
    );
    const size = (n: number | undefined) => (n === undefined ? "-" : formatBytes(n));
    const from = sizes(a.manifest) as Record<string, number>;
    const to = sizes(b.manifest) as Record<string, number>;
    const parts = ["tar", "tar.zst", "tar.gz", "tar.xz"]
      .filter((k) => to[k] !== undefined)
      .map((k) => `${k} ${size(from[k])} -> ${size(to[k])}`);
    lines.push(`sizes: ${parts.join("; ")}`);
    if (delta) {
      const full = to["tar.zst"] ?? to["tar.gz"];
      const share = full
        ? ` (${((100 * delta.size) / full).toFixed(1)}% of the ${to["tar.zst"] ? "tar.zst" : "tar.gz"})`
        : "";
      lines.push(`delta patch from ${a.manifest.version}: ${formatBytes(delta.size)}${share}`);
    } else if (b.from === "registry")
      lines.push(`delta patch from ${a.manifest.version}: none on the registry`);
    process.stdout.write(`${lines.join("\n")}\n`);
    return ExitCode.ok;
  },
};
