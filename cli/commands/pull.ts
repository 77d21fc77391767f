import { existsSync } from "node:fs";
import { OPENVZ_CACHE, PROXMOX_CACHE } from "../../client/host/cache.js";
import { hostPull } from "../../client/host/host-pull.js";
import { DEFAULT_MAX_WINDOW_LOG } from "../../common/delta.js";
import { ExitCode, UserError, usageError } from "../../common/errors.js";
import { parseFormat } from "../../common/formats.js";
import { createProgress, formatBytes } from "../../common/progress.js";
import { parseRef } from "../../common/reference.js";
import { parseCommandArgs } from "../args.js";
import type { Command } from "../command.js";
import { DEFAULT_KEYRING, hostSettings } from "../host-settings.js";
import { registryClient } from "../registry-flags.js";
import { clearingBarOnError } from "../terminal.js";

const help = `Usage: templar pull <ref> [--registry URL] [--dest DIR] [--format gz|xz|zst] [--keyring FILE]
                    [--allow-unsigned] [--proxmox] [--delta auto|always|never] [--no-delta]
                    [--delta-max-window N] [--json]

Downloads a template into a host's template cache, verified: the manifest's signature must
verify against the host's keyring, and the artifact's sha256 is checked while it streams. The
file appears only once complete and verified; after any failure nothing new is left behind.
<ref> is name, name@1.2.3, name@<tag> or name@<range> (quote ranges: 'debian-13-x86_64@^13').

OpenVZ (default): ${OPENVZ_CACHE}/<name>.tar.gz, the file vzctl create --ostemplate <name> uses.
Proxmox (--proxmox): ${PROXMOX_CACHE}/<name>_<version>_<arch>.tar.zst, as pveam stores
templates; pct create local:vztmpl/<that file> uses it. Pulling a newer version replaces the older file.

Pull writes only inside the destination: the template file and, in .templar/, the manifest
(<file>.manifest.json, .asc), where it came from (<file>.origin.json, for templar list, update,
prune), a lock, and an interrupted download (<file>.<digest>.partial), resumed by the next pull
only if it is a regular file of this user; if its bytes prove wrong, the download restarts once.
A template is up to date when its origin record names the same digest and the file is unchanged
since it was verified (size, inode, mtime, ctime; otherwise it is hashed again).

Delta updates: when the cache holds an older version of the template in the same format and the
registry has a patch from it (GET .../<version>/deltas), the patch is downloaded while the cached
file is unpacked; the patch is applied with zstd (installed on the host), the tar compressed
into the format asked for and checked against the signed manifest. The origin record then says
"via": "delta", and "local" holds the file's own digest and size when this host's compressor
made other bytes than the registry's artifact. Any failure falls back to the full download.
Rebuilding costs CPU in proportion to the tar's size: with --delta auto (the default) the patch
is taken only when rebuilding is expected to finish before a full download, by the speeds this
host measured (.templar/speeds.json: its last full download from the registry, or else the
patch's own; its last rebuild, or else a first estimate). Applying a patch needs memory for its
zstd window (2^N bytes, N about log2 of the tar size plus one) and disk for the unpacked old tar.

Options:
  --registry URL    registry base URL (default: $TEMPLAR_REGISTRY, else the host config)
  --token T         token, when the registry does not allow anonymous pulls (default: $TEMPLAR_TOKEN)
  --dest DIR        template cache (default: $TEMPLAR_DEST, host config, else as above)
  --format F        gz (OpenVZ default), xz or zst (Proxmox default)
  --keyring FILE    trusted public keys (default: $TEMPLAR_KEYRING, host config, else ${DEFAULT_KEYRING})
  --allow-unsigned  accept templates that carry no signature; a present signature must still verify
                    against the keyring (env TEMPLAR_ALLOW_UNSIGNED=1)
  --proxmox         Proxmox naming and format (or $TEMPLAR_PROXMOX=1, or 'proxmox: true' in the host config)
  --delta MODE      auto (default): a patch when it pays; always: any patch (fewest bytes); never
                    (or TEMPLAR_DELTA, or 'delta: MODE' in the host config)
  --no-delta        the same as --delta never
  --delta-max-window N  refuse patches whose zstd window exceeds 2^N bytes (default ${DEFAULT_MAX_WINDOW_LOG}: 1 GiB;
                    or TEMPLAR_DELTA_MAX_WINDOW, or 'deltaMaxWindow: N' in the host config)
  --json            print the result as JSON

Host config: /etc/templar/templar.yaml or $TEMPLAR_HOST_CONFIG (registry, keyring, proxmox, dest, token,
delta, deltaMaxWindow).
Environment: TEMPLAR_RETRIES attempts without progress before giving up (default 5),
TEMPLAR_HTTP_TIMEOUT_MS idle time before a connection counts as broken (default 60000).
Exit codes: 0 ok (also when already up to date), 3 signature or digest check failed, 4 not found
(template, version, format, or the keyring needed to check a signature).`;

export const command: Command = {
  help,
  async run(argv) {
    const { values, positionals } = parseCommandArgs("pull", argv, {
      registry: { type: "string" },
      token: { type: "string" },
      dest: { type: "string" },
      format: { type: "string" },
      keyring: { type: "string" },
      "allow-unsigned": { type: "boolean" },
      proxmox: { type: "boolean" },
      json: { type: "boolean" },
      delta: { type: "string" },
      "no-delta": { type: "boolean" },
      "delta-max-window": { type: "string" },
    });
    if (positionals.length !== 1)
      throw usageError("pull: expected one template reference (see 'templar pull --help')");
    const ref = parseRef(positionals[0]!);
    const format = values.format === undefined ? undefined : parseFormat(values.format);
    if (format === null)
      throw usageError(`pull: --format ${JSON.stringify(values.format)}: expected gz, xz or zst`);
    const settings = await hostSettings(values);
    if (!settings.registry)
      throw usageError(
        "pull: no registry: pass --registry URL, set TEMPLAR_REGISTRY or 'registry:' in the host config",
      );
    // The default cache exists on an OpenVZ (or Proxmox) host; creating it anywhere else would
    // hide a forgotten --dest behind a new directory nobody looks in.
    if (settings.destIsDefault && !existsSync(settings.dest))
      throw new UserError(
        `pull: ${settings.dest} does not exist: this is not ${settings.proxmox ? "a Proxmox" : "an OpenVZ"} host? ` +
          "pass --dest DIR (or set TEMPLAR_DEST, or dest: in the host config), or create it",
        ExitCode.notFound,
      );
    const client = registryClient("pull", { registry: settings.registry, token: settings.token });

    let progress: ReturnType<typeof createProgress> | null = null;
    let label = `pull ${ref.name}`;
    const result = await clearingBarOnError(() =>
      hostPull(client, ref, {
        dest: settings.dest,
        proxmox: settings.proxmox,
        format,
        keyring: settings.keyring,
        allowUnsigned: settings.allowUnsigned,
        delta: settings.delta,
        ...(settings.deltaMaxWindow ? { maxWindowLog: settings.deltaMaxWindow } : {}),
        onNote: (note) => {
          if (values.json) return;
          // A new stage (patch, then perhaps the full artifact) gets its own bar.
          (progress as ReturnType<typeof createProgress> | null)?.finish();
          progress = null;
          label = note.startsWith("delta from") ? `pull ${ref.name} (delta)` : `pull ${ref.name}`;
          process.stderr.write(`${ref.name}: ${note}\n`);
        },
        onProgress: (received, total) => {
          progress ??= createProgress(label, { total, enabled: !values.json });
          progress.update(received);
        },
      }),
    );
    if (values.json) {
      process.stdout.write(`${JSON.stringify(result)}\n`);
    } else if (result.sameContentAs !== undefined) {
      process.stdout.write(
        `${result.name}@${result.version}: same content as ${result.sameContentAs}, now recorded as ${result.version} (${result.path})\n`,
      );
    } else if (result.upToDate) {
      process.stdout.write(`${result.name}@${result.version}: ${result.path} is up to date\n`);
    } else {
      (progress as ReturnType<typeof createProgress> | null)?.finish("verified");
      const how =
        result.via === "delta"
          ? ` via a ${formatBytes(result.transferred)} delta from ${result.deltaFrom}${result.local ? ", recompressed here" : ""}`
          : "";
      process.stdout.write(
        `pulled ${result.name}@${result.version} (${result.digest}) to ${result.path}${how}\n`,
      );
    }
    return ExitCode.ok;
  },
};
