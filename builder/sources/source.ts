import type { z } from "zod";
import type { SourceInput } from "../../common/manifest.js";
import type { BuildContext } from "../context.js";

/** What a source method puts into the manifest's `source` field. */
export interface SourceManifest {
  method: string;
  inputs?: z.infer<typeof SourceInput>[];
  [field: string]: unknown;
}

export interface SourceResult {
  manifest: SourceManifest;
  /** Package files this build had to download (not found in the cache), when the method knows. */
  fetched?: { files: number; bytes: number };
}

/**
 * One way to get a root filesystem (one file per method, registered in ./index.ts). `schema`
 * checks the recipe's whole `source:` block, including `method:` itself; unknown keys are errors.
 */
export interface SourceMethod<Config = unknown> {
  name: string;
  schema: z.ZodType<Config>;
  /** What the stage line says it runs (default: the method's name), e.g. "mmdebstrap trixie". */
  describe?(config: Config, ctx: BuildContext): string;
  /** Fills the empty directory `ctx.root`; throws a UserError saying what went wrong. */
  populate(config: Config, ctx: BuildContext): Promise<SourceResult>;
  /**
   * What the source would start from now, found cheaply (small signed files only, nothing big
   * downloaded): each input's URI and the sha256 it has now, in the shape populate records in
   * the manifest's `source.inputs`. `templar build --if-changed` compares them with the newest
   * manifest. `artifact`: the address populate would record as `source.artifact`.
   */
  probe?(config: Config, ctx: ProbeContext): Promise<SourceProbe>;
}

export type ProbeContext = Pick<
  BuildContext,
  "recipe" | "cacheDir" | "mirror" | "aptDir" | "securityMirror" | "signal" | "log"
>;

export interface SourceProbe {
  inputs: { uri: string; sha256: string }[];
  artifact?: string;
}

/** Lets the table hold methods with different config types. */
export function defineSource<Config>(method: SourceMethod<Config>): SourceMethod<unknown> {
  return method as SourceMethod<unknown>;
}
