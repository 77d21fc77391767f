import type { z } from "zod";
import type { SourceInput } from "../../../common/manifest.js";
import type { Placeholders } from "./config.js";

/**
 * Finds, downloads and verifies an archive source's artifact. Order matters: keys are pinned
 * first, then the index and checksum file are verified, then the artifact is downloaded and
 * checked. Only a verified artifact path is returned; nothing is unpacked here.
 */
export interface AcquireOptions {
  cacheDir: string;
  /** Directory of the recipe: `file:` key paths are relative to it. */
  recipeDir: string;
  values: Omit<Placeholders, "artifact">;
  signal?: AbortSignal;
  log: (line: string) => void;
  progress?: boolean;
}

export interface Acquired {
  path: string;
  artifactUrl: string;
  sha256: string;
  /** How the artifact was trusted: "pgp:<fingerprint>", "pinned-sha256" or "https". */
  verified: string;
  inputs: z.infer<typeof SourceInput>[];
  fetchedBytes: number;
  fromCache: boolean;
}

export type Input = z.infer<typeof SourceInput>;
