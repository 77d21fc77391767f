import { inspectPath } from "../../builder/pack/inspect.js";
import { ExitCode, usageError } from "../../common/errors.js";
import { formatBytes } from "../../common/progress.js";
import { checkSignatures } from "../../common/signing/inspect-signatures.js";
import { parseCommandArgs } from "../args.js";
import type { Command } from "../command.js";

const help = `Usage: templar inspect <template file | manifest> [--keyring FILE] [--json]

Shows a template's name, version, sizes and entry count and verifies every digest it can:
given a manifest, the artifacts next to it; given a template file (.tar.zst, .tar.gz, .tar.xz),
that file against the manifest next to it. A corrupt or truncated file, or any digest that does
not match, exits with code 3.

Signatures (<file>.asc beside the manifest and each artifact): with --keyring, each is verified
and its signer's fingerprint and user id printed (one that does not verify: exit 3; a keyring
file that does not exist: exit 4). Without it, the key that claims to have signed is shown,
marked as not verified.

Options:
  --keyring FILE trusted public keys to verify the signatures with
  --json         print the report as JSON on stdout
  --in-process   decompress in-process even when zstd/pigz/gzip are installed (xz needs xz)
`;

export const command: Command = {
  help,
  async run(argv) {
    const { values, positionals } = parseCommandArgs("inspect", argv, {
      json: { type: "boolean" },
      "in-process": { type: "boolean" },
      keyring: { type: "string" },
    });
    if (positionals.length !== 1) throw usageError("inspect: expected one template file or manifest");
    const report = await inspectPath(positionals[0]!, values["in-process"] ?? false);
    const signed = [
      ...(report.manifestPath ? [{ what: "manifest", path: report.manifestPath }] : []),
      ...report.artifacts
        .filter((a) => a.status !== "missing")
        .map((a) => ({ what: a.format, path: a.path })),
    ];
    const signatures = await checkSignatures(signed, values.keyring);
    for (const s of signatures) {
      if (s.status === "failed") report.problems.push(`${s.what} signature ${s.signature}: ${s.problem}`);
    }
    const code = report.problems.length ? ExitCode.verification : ExitCode.ok;
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ ...report, signatures, ok: code === 0 }, null, 2)}\n`);
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
    for (const s of signatures) {
      const label = `signature ${s.what}:`.padEnd(20);
      if (s.status === "none") lines.push(`${label} none`);
      else if (s.status === "unverified")
        lines.push(`${label} claims key ${s.signer}, NOT verified (pass --keyring FILE to verify)`);
      else if (s.status === "verified")
        lines.push(`${label} verified, signed by ${s.signer}${s.userId ? ` ${s.userId}` : ""}`);
      else lines.push(`${label} FAILED: ${s.problem}`);
    }
    for (const problem of report.problems) lines.push(`problem: ${problem}`);
    process.stdout.write(`${lines.join("\n")}\n`);
    if (code !== 0) process.stderr.write(`templar: inspect: ${report.problems.length} problem(s) found\n`);
    return code;
  },
};
