import type { Hono } from "hono";
import type { RegistryEnv } from "../http/context.js";

/**
 * A host channel: one way a kind of host gets templates with the tool it already has (OpenVZ's
 * vztmpl-dl, Proxmox's pveam, ...). Each is a read-only view over the store, one file (or
 * folder) per channel, registered in index.ts. Every request under `paths` is a pull: the
 * caller is authenticated and must hold a pull scope before the channel sees the request.
 */
export interface HostChannel {
  /** Who it serves, e.g. "OpenVZ vztmpl-dl". */
  readonly name: string;
  /**
   * Route patterns the channel owns (Hono syntax), for the pull check. A channel whose clients
   * speak an auth protocol of their own (OCI's token flow) lists none and checks the same scopes
   * in its routes.
   */
  readonly paths: readonly string[];
  /** Adds the channel's routes (GET routes answer HEAD as well). */
  routes(app: Hono<RegistryEnv>): void;
}
