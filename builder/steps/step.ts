import type { z } from "zod";
import type { BuildContext } from "../context.js";
import type { Family } from "../family/family.js";
import type { Place } from "../recipe/schema.js";

export interface StepContext extends BuildContext {
  /** The distro family of the recipe (package manager, container preset, inventory). */
  family: Family;
  /** Where this step is in the recipe, for error messages. */
  place: Place;
}

/**
 * One step kind (one file per kind, registered in ./index.ts). A recipe step is
 * `{ <name>: <config> }`; `schema` checks the config (unknown keys are errors).
 */
export interface StepKind<Config = unknown> {
  name: string;
  schema: z.ZodType<Config>;
  run(config: Config, ctx: StepContext): Promise<void>;
}

export function defineStep<Config>(kind: StepKind<Config>): StepKind<unknown> {
  return kind as StepKind<unknown>;
}
