import { RegistryClient } from "../client/http.js";
import { usageError } from "../common/errors.js";
import { clientTuning, flagOrEnv } from "./settings.js";

const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]"]);

/**
 * The client for `--registry`/`--token` (or TEMPLAR_REGISTRY/TEMPLAR_TOKEN), shared by push, pull
 * and list. A token about to travel in clear text to another host gets a warning (not its value).
 */
export function registryClient(
  command: string,
  values: { registry?: string; token?: string },
): RegistryClient {
  const registry = flagOrEnv(values.registry, "TEMPLAR_REGISTRY");
  if (!registry) throw usageError(`${command}: no registry: pass --registry URL or set TEMPLAR_REGISTRY`);
  const client = new RegistryClient({
    registry,
    token: flagOrEnv(values.token, "TEMPLAR_TOKEN"),
    ...clientTuning(),
  });
  if (client.hasToken && client.base.protocol === "http:" && !LOOPBACK.has(client.base.hostname)) {
    process.stderr.write(`templar: warning: sending the token to ${client.display} without TLS\n`);
  }
  return client;
}
