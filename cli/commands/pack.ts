import { rmSync } from "node:fs";
import { resolve } from "node:path";
import { readTreeXattrs } from "../../builder/pack/xattrs.js";
import { usageError } from "../../common/errors.js";
import { parsePackOutputs } from "../../common/formats.js";
import { createProgress, formatBytes } from "../../common/progress.js";
import { parseCommandArgs } from "../args.js";
import type { Command } from "../command.js";
import { preflight } from "../preflight.js";
import { env, flagOrEnv, sourceDateEpoch } from "../settings.js";

const help = `Usage: templar pack <rootfs-dir> --name NAME --version VER [options]

Packs a root filesystem directory into a deterministic tar (entries sorted by name, numeric
owners, mtimes clamped to SOURCE_DATE_EPOCH, xattrs and ACLs as PAX records), compressed into
each format in one pass, and writes <name>-<version>.<format> and <name>-<version>.manifest.json.

Options:
  --name NAME              template name, e.g. debian-13-x86_64-minimal
  --version VER            semantic version, e.g. 13.2.0
  --out DIR                output directory (default: $TEMPLAR_OUT or ./out)
  --formats LIST           comma-separated: zst, gz, xz, and host names: lxc (xz and LXC's
                           meta.tar.xz), incus (xz and the Incus metadata) (default: zst,gz)
  --source-date-epoch N    clamp mtimes to N and use it as 'created' (default: $SOURCE_DATE_EPOCH)
  --in-process             use the in-process compressors even when zstd/pigz are installed
  --sign-key FILE          sign the manifest and each artifact (<file>.asc) with this armoured
                           OpenPGP secret key (templar key generate; env TEMPLAR_SIGN_KEY)
  --passphrase-file FILE   passphrase of a protected key (else $TEMPLAR_SIGN_PASSPHRASE)
  --sign-with gpg:KEYID    sign with the gpg agent's key instead of a key file
  --sbom                   also write the bill of materials, <name>-<version>.cdx.json (CycloneDX
                           1.6) and .spdx.json (SPDX 2.3), every package with its purl
  --json                   print the result as JSON on stdout
`;

export const command: Command = {
  help,
  async run(argv) {
    const { values, positionals } = parseCommandArgs("pack", argv, {
      name: { type: "string" },
      version: { type: "string" },
      out: { type: "string" },
      formats: { type: "string" },
      "source-date-epoch": { type: "string" },
      "in-process": { type: "boolean" },
      json: { type: "boolean" },
      sbom: { type: "boolean" },
      "sign-key": { type: "string" },
      "sign-with": { type: "string" },
      "passphrase-file": { type: "string" },
    });
    if (positionals.length !== 1)
      throw usageError("pack: expected exactly one <rootfs-dir> (see 'templar pack --help')");
    if (values.name === undefined) throw usageError("pack: --name is required");
    if (values.version === undefined) throw usageError("pack: --version is required");
    const outputs = values.formats !== undefined ? parsePackOutputs(values.formats.split(",")) : undefined;
    // Before any work: a machine without getfattr says so now, not after half a minute.
    preflight("pack", { quiet: true });
    const epoch = values["source-date-epoch"];
    // getfattr over a Debian minbase takes ~70 ms and loading the packer ~45 ms: overlap them
    // (the packer reports a missing rootfs itself; this early run's failure is then ignored).
    const xattrs = readTreeXattrs(resolve(positionals[0]!));
    xattrs.catch(() => {});
    const [{ assertOutsideRoot, packTemplate, removePartialOutputsSync }, { openSigner }, output] =
      await Promise.all([
        import("../../builder/pack/pack.js"),
        import("../../common/signing/signer.js"),
        import("../../builder/output.js"),
      ]);
    const outDir = resolve(flagOrEnv(values.out, "TEMPLAR_OUT", "out")!);
    let staging: string | undefined;
    // Interrupted: no half-written artifact may stay behind (the compressors get the signal too).
    for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
      process.once(signal, () => {
        removePartialOutputsSync();
        if (staging) rmSync(staging, { recursive: true, force: true });
        process.stderr.write(`\ntemplar: pack interrupted (${signal}); partial output removed\n`);
        process.exit(130);
      });
    }
    // Open the key first: a wrong passphrase should fail before minutes of packing.
    const signer = await openSigner({
      keyFile: flagOrEnv(values["sign-key"], "TEMPLAR_SIGN_KEY"),
      passphraseFile: values["passphrase-file"],
      passphrase: env("TEMPLAR_SIGN_PASSPHRASE"),
      signWith: values["sign-with"],
    });
    const progress = createProgress("pack", { unit: "bytes", enabled: !values.json });
    let entries = 0;
    // Packed and signed in a staging directory: the output appears only when all of it is done.
    assertOutsideRoot(positionals[0]!, outDir);
    staging = await output.makeStaging(outDir);
    let packed: Awaited<ReturnType<typeof packTemplate>>;
    let published: Awaited<ReturnType<typeof output.publishOutput>>;
    try {
      packed = await packTemplate({
        rootfs: positionals[0]!,
        outDir: staging,
        name: values.name,
        version: values.version,
        formats: outputs?.formats,
        meta: outputs?.meta,
        sourceDateEpoch: sourceDateEpoch(epoch)?.value,
        inProcessOnly: values["in-process"] ?? false,
        xattrs,
        onProgress: (bytes, n) => {
          entries = n;
          progress.update(bytes, `${n} entries`);
        },
      });
      progress.finish(`${packed.manifest.rootfs.entries || entries} entries`);
      published = await output.publishOutput(packed, outDir, { signer, sbom: values.sbom ?? false });
    } finally {
      await output.removeStaging(staging);
      staging = undefined;
    }
    const result = { ...packed, ...published };
    const { manifest, signatures } = result;
    for (const warning of result.warnings) process.stderr.write(`templar: warning: ${warning}\n`);
    if (values.json) {
      process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      return 0;
    }
    const lines = [
      `${manifest.name} ${manifest.version}: tar ${formatBytes(manifest.rootfs.tarSize)}, ${manifest.rootfs.entries} entries, sha256 ${manifest.rootfs.tarSha256}`,
      ...manifest.artifacts.map((a) => `  ${result.files[a.format]}  ${formatBytes(a.size)}  ${a.digest}`),
      `  ${result.manifestPath}`,
      ...result.sbom.map((path) => `  ${path}  (SBOM)`),
      ...(signer ? [`  signed by ${signer.description}: ${signatures.length} .asc files`] : []),
    ];
    process.stdout.write(`${lines.join("\n")}\n`);
    return 0;
  },
};
