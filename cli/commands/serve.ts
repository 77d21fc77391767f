import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { errorMessage, usageError } from "../../common/errors.js";
import { DEFAULT_CONFIG_FILE, loadConfig, parseDuration, retentionRules } from "../../registry/config.js";
import { startRegistry } from "../../registry/server.js";
import { openStorage } from "../../registry/storage/backends.js";
import type { TlsFiles } from "../../registry/tls.js";
import { parseCommandArgs } from "../args.js";
import type { Command } from "../command.js";
import { env, flagOrEnv, registryConfigPath, registryStorage, storageEnvironment } from "../settings.js";

const help = `Usage: templar serve [--storage DIR | s3://bucket/prefix] [--listen HOST:PORT] [--config FILE]
                     [--tls-cert FILE --tls-key FILE]

Runs the template registry (HTTP API v1, the host channels, pages, /healthz, /readyz, /metrics).

Options:
  --storage DIR|URL   where templates live (default ./data; env TEMPLAR_STORAGE)
  --listen HOST:PORT  address to listen on (default 127.0.0.1:8080; env TEMPLAR_LISTEN; port 0 = any free port)
  --config FILE       registry config: tokens, keys, anonymous pull, GC (env TEMPLAR_CONFIG; default
                      the file beside the storage, <storage dir>/templar-registry.yaml; S3 storage
                      needs it named). Re-read when it changes, so new tokens work at once.
  --tls-cert FILE     serve HTTPS with this PEM certificate chain (env TEMPLAR_TLS_CERT; config tls.cert)
  --tls-key FILE      and this PEM private key (env TEMPLAR_TLS_KEY; config tls.key). Both files are
                      re-read when they change, so a renewed certificate needs no restart.

S3 storage (--storage s3://bucket/prefix; each also from the config file's s3: section):
  --s3-endpoint URL   S3 endpoint (env TEMPLAR_S3_ENDPOINT, AWS_ENDPOINT_URL; default AWS)
  --s3-region R       region (env TEMPLAR_S3_REGION, AWS_REGION)
  --s3-path-style     path-style bucket URLs, as Ceph RGW and MinIO need (env TEMPLAR_S3_FORCE_PATH_STYLE=true)
  --s3-redirect       answer blob downloads with a redirect to a presigned URL instead of
                      streaming them (env TEMPLAR_S3_REDIRECT=true); manifests are always streamed
  --s3-access-key-id ID, --s3-secret-access-key KEY
                      credentials; better from env AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the
                      AWS credential chain (profiles, instance roles), which is used when none are given

Logs one JSON line per request on stdout. Create a push token with:
  templar token create --scope 'push:*' --storage DIR   (or --config FILE)`;

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(listen);
  const port = Number(m?.[3]);
  if (!m || port > 65535) throw usageError(`--listen ${listen}: expected HOST:PORT, e.g. 127.0.0.1:8080`);
  return { host: m[1] ?? (m[2] || "127.0.0.1"), port };
}

/** The TLS pair from flags, else env, else the config file (relative to it); both or neither. */
function tlsFiles(
  certFlag: string | undefined,
  keyFlag: string | undefined,
  fromFile: { cert: string; key: string } | undefined,
  configPath: string,
): TlsFiles | undefined {
  const cert = flagOrEnv(certFlag, "TEMPLAR_TLS_CERT");
  const key = flagOrEnv(keyFlag, "TEMPLAR_TLS_KEY");
  if (cert || key) {
    if (!cert || !key)
      throw usageError("serve: --tls-cert and --tls-key go together (a certificate and its key)");
    return { cert: resolve(cert), key: resolve(key) };
  }
  if (!fromFile) return undefined;
  const base = dirname(resolve(configPath));
  return { cert: resolve(base, fromFile.cert), key: resolve(base, fromFile.key) };
}

export const command: Command = {
  help,
  async run(argv) {
    const { values, positionals } = parseCommandArgs("serve", argv, {
      storage: { type: "string" },
      listen: { type: "string" },
      config: { type: "string" },
      "s3-endpoint": { type: "string" },
      "s3-region": { type: "string" },
      "s3-path-style": { type: "boolean" },
      "s3-redirect": { type: "boolean" },
      "s3-access-key-id": { type: "string" },
      "s3-secret-access-key": { type: "string" },
      "tls-cert": { type: "string" },
      "tls-key": { type: "string" },
    });
    if (positionals.length) throw usageError(`serve: unexpected argument ${positionals[0]}`);
    const storageSpec = registryStorage(values.storage);
    const { host, port } = parseListen(flagOrEnv(values.listen, "TEMPLAR_LISTEN", "127.0.0.1:8080")!);
    const configPath = registryConfigPath(values.config, storageSpec);
    const configExists = existsSync(configPath);
    const fileConfig = await loadConfig(configPath);
    const tls = tlsFiles(values["tls-cert"], values["tls-key"], fileConfig.tls, configPath);
    const storage = await openStorage(storageSpec, {
      s3Flags: {
        endpoint: values["s3-endpoint"],
        region: values["s3-region"],
        forcePathStyle: values["s3-path-style"],
        redirect: values["s3-redirect"],
        accessKeyId: values["s3-access-key-id"],
        secretAccessKey: values["s3-secret-access-key"],
      },
      s3Config: fileConfig.s3,
      env: storageEnvironment(),
    });
    const log = (entry: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(entry)}\n`);
    // Unusable storage (wrong secret, unreachable endpoint, missing bucket) is said once, clearly;
    // the process still serves /healthz and answers /readyz 503 until the storage works, and every
    // request that needs storage fails whole (never partial data).
    await storage.check().catch((err: unknown) => {
      log({
        time: new Date().toISOString(),
        event: "storage-unready",
        storage: storageSpec,
        error: errorMessage(err),
      });
    });
    const registry = await startRegistry({
      storage,
      configPath,
      host,
      port,
      tls,
      log,
      indexPassphrase: env("TEMPLAR_INDEX_PASSPHRASE"),
    });
    const config = registry.deps.config.current;
    log({
      time: new Date().toISOString(),
      event: "listening",
      url: registry.url,
      storage: storage.kind,
      config: configPath,
    });
    const tokens = config.tokens.length;
    const stray = resolve(DEFAULT_CONFIG_FILE);
    process.stderr.write(
      `templar registry on ${registry.url} (storage: ${storage.kind} ${storageSpec})\n` +
        `config: ${configPath}${configExists ? "" : " (not there yet: defaults, no tokens)"}\n` +
        (stray !== configPath && existsSync(stray)
          ? `note: ${stray} in the working directory is not used; pass --config ${stray} to use it\n`
          : "") +
        `anonymous pull: ${config.anonymousPull ? "on" : "off"}; ${tokens} token(s) configured.\n` +
        (tokens === 0
          ? `To push, create a token (printed once) and pass it to 'templar push --token':\n` +
            `  templar token create --scope 'push:*' --config ${configPath}\n`
          : ""),
    );

    // Periodic online GC: safe beside pushes (grace period) and beside other replicas' GC.
    const intervalMs = parseDuration(config.gc.interval, "gc.interval");
    let timer: NodeJS.Timeout | undefined;
    if (intervalMs > 0) {
      const tick = async () => {
        const current = await registry.deps.config.get();
        try {
          const report = await registry.deps.store.gc({
            graceMs: parseDuration(current.gc.grace, "gc.grace"),
            uploadExpiryMs: parseDuration(current.gc.uploadExpiry, "gc.uploadExpiry"),
            retention: retentionRules(current),
          });
          log({ time: new Date().toISOString(), event: "gc", ...report });
        } catch (err) {
          log({ time: new Date().toISOString(), event: "gc-failed", error: errorMessage(err) });
        }
        timer = setTimeout(tick, intervalMs);
        timer.unref();
      };
      timer = setTimeout(tick, intervalMs);
      timer.unref();
    }

    await new Promise<void>((done) => {
      const stop = () => {
        clearTimeout(timer);
        registry.close().then(done, done);
      };
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });
    return 0;
  },
};
