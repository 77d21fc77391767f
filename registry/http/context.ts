import type { HttpBindings } from "@hono/node-server";
import type { Context } from "hono";
import { CodedError } from "../../common/error-codes.js";
import { isTag, isVersion, templateNameProblem } from "../../common/names.js";
import { type Action, allowed, authorize, type Principal, pullsEverything } from "../auth.js";
import type { ConfigWatcher, RegistryConfig } from "../config.js";
import type { DeltaMaker } from "../deltas/maker.js";
import type { Metrics } from "../metrics.js";
import type { Store } from "../store/store.js";

/** What every handler can reach: the store and the per-process helpers around it. */
export interface RegistryDeps {
  store: Store;
  config: ConfigWatcher;
  metrics: Metrics;
  /** The index key's passphrase when the config names no passphrase file. */
  indexPassphrase?: string | undefined;
  /** Makes delta patches in the background after pushes (registry/deltas/maker.ts). */
  deltas?: DeltaMaker;
  /** One JSON line per call (stdout in `templar serve`). */
  log: (entry: Record<string, unknown>) => void;
}

export type RegistryEnv = {
  Bindings: HttpBindings;
  Variables: { deps: RegistryDeps; principal: Principal; config: RegistryConfig };
};

export type Ctx = Context<RegistryEnv>;

export function deps(c: Ctx): RegistryDeps {
  return c.get("deps");
}

/** Checks the caller may do `action` on `name` (null: on any template, e.g. blobs). */
export function need(c: Ctx, action: Action, name: string | null): void {
  authorize(c.get("principal"), action, name, c.get("config"));
}

/**
 * Whether the caller may read blob `hex` (already known to exist): callers that may pull every
 * name may; a name-scoped token only when a template within its scope names the blob (push
 * scopes count: a push token reads what it may push).
 */
export async function mayReadBlob(c: Ctx, hex: string): Promise<boolean> {
  const principal = c.get("principal");
  const config = c.get("config");
  if (pullsEverything(principal, config)) return true;
  return deps(c).store.blobNames.namedWithin(hex, (name) => allowed(principal, "pull", name, config));
}

export function nameParam(c: Ctx): string {
  const name = c.req.param("name") ?? "";
  const problem = templateNameProblem(name);
  if (problem) throw new CodedError("NAME_INVALID", `template name ${JSON.stringify(name)} ${problem}`);
  return name;
}

export function versionParam(c: Ctx, param = "version"): string {
  const version = c.req.param(param) ?? "";
  if (!isVersion(version)) {
    throw new CodedError(
      "VERSION_INVALID",
      `version ${JSON.stringify(version)} is not a semantic version such as 1.2.3 or 1.2.0-rc.1`,
    );
  }
  return version;
}

export function tagParam(c: Ctx): string {
  const tag = c.req.param("tag") ?? "";
  if (!isTag(tag))
    throw new CodedError("TAG_INVALID", `tag ${JSON.stringify(tag)} must match [a-z][a-z0-9._-]*`);
  return tag;
}

/** A reference from the path (version, tag or decoded range): bounded, no NUL. */
export function assertRefSafe(ref: string): string {
  if (ref.length === 0 || ref.length > 256 || ref.includes("\0")) {
    throw new CodedError("REFERENCE_INVALID", "reference must be 1-256 characters without NUL");
  }
  return ref;
}
