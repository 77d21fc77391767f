import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { UserError } from "../common/errors.js";
import { createApp } from "./app.js";
import { ConfigWatcher, parseDuration } from "./config.js";
import { DeltaMaker } from "./deltas/maker.js";
import type { RegistryDeps } from "./http/context.js";
import { Metrics } from "./metrics.js";
import type { StorageDriver } from "./storage/driver.js";
import { Store } from "./store/store.js";
import { loadTls, reloadOnChange, type TlsFiles } from "./tls.js";

export interface RegistryOptions {
  /** Where the templates live; the registry's store is built on it. */
  storage: StorageDriver;
  /** Config file to read (and re-read on change); null: defaults only. */
  configPath: string | null;
  /** The index key's passphrase when the config names no passphrase file ($TEMPLAR_INDEX_PASSPHRASE). */
  indexPassphrase?: string | undefined;
  log?: (entry: Record<string, unknown>) => void;
}

/** Builds the per-process helpers around storage; nothing here is state replicas must share. */
export async function createDeps(options: RegistryOptions): Promise<RegistryDeps> {
  const log = options.log ?? ((entry) => process.stdout.write(`${JSON.stringify(entry)}\n`));
  const config = await ConfigWatcher.open(options.configPath);
  const store = new Store(options.storage, {
    cacheTtlMs: parseDuration(config.current.cacheTtl, "cacheTtl"),
  });
  const deltas = new DeltaMaker(store, async () => (await config.get()).deltas, log);
  return {
    store,
    config,
    metrics: new Metrics(store),
    log,
    indexPassphrase: options.indexPassphrase,
    deltas,
  };
}

export interface RunningRegistry {
  url: string;
  deps: RegistryDeps;
  close(): Promise<void>;
}

export interface ListenOptions {
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
  /** Serve HTTPS with this certificate and key, re-read when they change; else plain HTTP. */
  tls?: TlsFiles | undefined;
  /** How often the TLS files are checked for a change (default 2 s). */
  tlsPollMs?: number;
}

/** Starts the HTTP(S) server. */
export async function startRegistry(options: RegistryOptions & ListenOptions): Promise<RunningRegistry> {
  const material = options.tls ? await loadTls(options.tls) : undefined;
  const deps = await createDeps(options);
  const app = createApp(deps);
  const server = serve({
    fetch: app.fetch,
    hostname: options.host,
    port: options.port,
    // Node's default 5-minute limit per request would cut a large upload on a slow link; slow
    // headers are still cut by headersTimeout, idle sockets by the keep-alive timeout.
    serverOptions: { requestTimeout: 0, ...material },
    ...(material ? { createServer: createHttpsServer } : {}),
  });
  const stopWatching =
    options.tls && material
      ? reloadOnChange(server as unknown as HttpsServer, options.tls, deps.log, options.tlsPollMs)
      : () => {};
  await new Promise<void>((resolve, reject) => {
    server.once("listening", resolve);
    server.once("error", (err: NodeJS.ErrnoException) => {
      const why = err.code === "EADDRINUSE" ? "the address is in use" : err.message;
      reject(new UserError(`cannot listen on ${options.host}:${options.port}: ${why}`));
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return {
    url: `${material ? "https" : "http"}://${host}:${address.port}`,
    deps,
    close: async () => {
      await new Promise<void>((resolve) => {
        stopWatching();
        server.close(() => resolve());
        (server as { closeAllConnections?: () => void }).closeAllConnections?.();
      });
      // A patch being made finishes (its blob and index are whole objects); queued ones are dropped.
      await deps.deltas?.stop();
    },
  };
}
