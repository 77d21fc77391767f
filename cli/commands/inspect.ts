import { inspectPath } from "../../builder/pack/inspect.js";
import { ExitCode, usageError } from "../../common/errors.js";
import { formatBytes } from "../../common/progress.js";
import { parseCommandArgs } from "../args.js";
import type { Command } from "../command.js";

const help = `Usage: templar inspect <template file | manifest> [--json]

Shows a template's name, version, sizes and entry count and verifies every digest it can:
given a manifest, the artifacts next to it; given a template file (.tar.zst, .tar.gz, .tar.xz),
that file against the manifest next to it. A corrupt or truncated file, or any digest that does
not match, exits with code 3.

Options:
  --json         print the report as JSON on stdout
  --in-process   decompress in-process even when zstd/pigz/gzip are installed (xz needs xz)
`;

export const command: Command = {
  help,
  async run(argv) {
    const { values, positionals } = parseCommandArgs("inspect", argv, {
      json: { type: "boolean" },
      "in-process": { type: "boolean" },
    });
    if (positionals.length !== 1) throw usageError("inspect: expected one template file or manifest");
    const report = await inspectPath(positionals[0]!, values["in-process"] ?? false);
    const code = report.problems.length ? ExitCode.verification : ExitCode.ok;
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ ...report, ok: code === 0 }, null, 2)}\n`);
      return code;
    }
    const { manifest } = report;
    const lines: string[] = [];
    if (manifest) {
      lines.push(
        `name:     ${manifest.name}`,
        `version:  ${manifest.version}`,
        `created:  ${manifest.created}`,
      );
      lines.push(
        `rootfs:   tar ${formatBytes(manifest.rootfs.tarSize)} (${manifest.rootfs.tarSize} bytes), ${manifest.rootfs.entries} entries, sha256 ${manifest.rootfs.tarSha256}`,
      );
      lines.push(`manifest: ${report.manifestPath}`);
    } else {
      lines.push("manifest: none next to the file; only its integrity was checked");
    }
    for (const a of report.artifacts) {
      if (a.status === "missing") {
        lines.push(`${a.format.padEnd(8)}  not present (${a.path}), not checked`);
        continue;
      }
      const f = a.facts!;
      lines.push(
        `${f.format.padEnd(8)}  ${formatBytes(f.size)} (${f.size} bytes), tar ${f.tarSize} bytes, ${f.entries} entries, sha256:${f.sha256}  ${a.status === "ok" ? (manifest ? "verified" : "readable") : "MISMATCH"}`,
      );
    }
    for (const problem of report.problems) lines.push(`problem: ${problem}`);
    process.stdout.write(`${lines.join("\n")}\n`);
    if (code !== 0) process.stderr.write(`templar: inspect: ${report.problems.length} problem(s) found\n`);
    return code;
  },
};
