import { usageError } from "../../common/errors.js";
import { formatBytes } from "../../common/progress.js";
import { loadConfig, parseDuration, retentionRules } from "../../registry/config.js";
import { openStorage } from "../../registry/storage/backends.js";
import { Store } from "../../registry/store/store.js";
import { parseCommandArgs } from "../args.js";
import type { Command } from "../command.js";
import { registryConfigPath, registryStorage, storageEnvironment } from "../settings.js";

const help = `Usage: templar gc [--grace 1h] [--upload-expiry 24h] [--dry-run] [--storage DIR|URL] [--config FILE] [--json]

Applies the config's retention rules (retention:, see README "Retention"), deleting the versions
they do not keep; then deletes blobs that no manifest (or delta index of an existing version)
names and that are older than the grace period, and removes resumable uploads abandoned longer
than the upload expiry. With --dry-run, the versions retention would delete are listed (their
blobs are not counted as freed, since their manifests still name them). Safe while registries serve and
accept pushes (no read-only window). Defaults come from the config file's gc section.

Options:
  --grace DUR          keep unreferenced blobs younger than this (default 1h)
  --upload-expiry DUR  expire uploads started longer ago than this (default 24h)
  --dry-run            report what would be deleted, delete nothing
  --storage DIR|URL    registry storage (default ./data; env TEMPLAR_STORAGE)
  --config FILE        registry config (default <storage dir>/templar-registry.yaml; env
                       TEMPLAR_CONFIG; required for S3 storage)
  --json               print the report as JSON`;

export const command: Command = {
  help,
  async run(argv) {
    const { values, positionals } = parseCommandArgs("gc", argv, {
      grace: { type: "string" },
      "upload-expiry": { type: "string" },
      "dry-run": { type: "boolean" },
      storage: { type: "string" },
      config: { type: "string" },
      json: { type: "boolean" },
    });
    if (positionals.length) throw usageError(`gc: unexpected argument ${positionals[0]}`);
    const storageSpec = registryStorage(values.storage);
    const config = await loadConfig(registryConfigPath(values.config, storageSpec));
    const graceMs = parseDuration(values.grace ?? config.gc.grace, "--grace");
    const uploadExpiryMs = parseDuration(
      values["upload-expiry"] ?? config.gc.uploadExpiry,
      "--upload-expiry",
    );
    // S3 settings (endpoint, credentials, ...) come from the environment and the config's s3: section.
    const driver = await openStorage(storageSpec, {
      s3Config: config.s3,
      env: storageEnvironment(),
    });
    const store = new Store(driver, { cacheTtlMs: parseDuration(config.cacheTtl, "cacheTtl") });
    const dryRun = values["dry-run"] ?? false;
    const report = await store.gc({
      graceMs,
      uploadExpiryMs,
      dryRun,
      retention: retentionRules(config),
      onDelete: values.json
        ? undefined
        : (hex, size) =>
            process.stdout.write(
              `${dryRun ? "would delete" : "deleted"} sha256:${hex} (${formatBytes(size)})\n`,
            ),
    });
    if (values.json) process.stdout.write(`${JSON.stringify(report)}\n`);
    else {
      for (const v of report.retention)
        process.stdout.write(
          `${dryRun ? "would delete" : "deleted"} ${v.name}@${v.version} (retention rule ${v.rule})\n`,
        );
      process.stdout.write(
        `${dryRun ? "dry run: would delete" : "deleted"} ${report.deleted} of ${report.blobs} blobs (${formatBytes(report.bytesFreed)}); ` +
          `${report.referenced} referenced by ${report.manifests} manifests, ${report.keptYoung} younger than the grace period; ` +
          `${report.uploadsExpired} abandoned uploads ${dryRun ? "to expire" : "expired"}` +
          (report.partialWritesAborted
            ? `; ${report.partialWritesAborted} unfinished writes ${dryRun ? "to abort" : "aborted"}`
            : "") +
          "\n",
      );
    }
    return 0;
  },
};
