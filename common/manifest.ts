import { z } from "zod";
import { UserError } from "./errors.js";
import { FORMATS } from "./manifest-files.js";
import { isVersion, templateNameProblem } from "./names.js";

/**
 * The template manifest of DESIGN.md ("Template artifact"). Declared once here and validated
 * wherever a manifest comes in (inspect, push, registry). Fields may be added later; existing
 * ones never change meaning, so unknown fields are kept (looseObject), not rejected.
 */
const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, "expected 64 lower-case hex characters");
const digest = z.string().regex(/^sha256:[0-9a-f]{64}$/, "expected sha256:<64 hex>");

// The zod-free parts (formats, file names, serialisation) live in manifest-files.ts so that the
// packer's start-up does not pay for loading zod; re-exported here for everyone else.
export {
  artifactFileName,
  FORMATS,
  type Format,
  manifestFileName,
  serializeManifest,
} from "./manifest-files.js";

export const SourceInput = z.looseObject({
  uri: z.string(),
  sha256: sha256Hex.optional(),
  /** How the input was verified: "pgp:<fingerprint>", "pinned-sha256", "https", "apt-release". */
  verified: z.string().optional(),
});

export const ArtifactSchema = z.looseObject({
  format: z.enum(FORMATS),
  digest,
  size: z.number().int().nonnegative(),
});

export const PackageSchema = z.looseObject({
  name: z.string().min(1),
  version: z.string(),
  arch: z.string(),
});

export const ManifestSchema = z.looseObject({
  schemaVersion: z.literal(1),
  name: z.string().refine((n) => templateNameProblem(n) === null, "invalid template name"),
  version: z.string().refine(isVersion, "expected a semantic version such as 1.2.3"),
  distro: z.string().optional(),
  release: z.string().optional(),
  arch: z.string().optional(),
  flavour: z.string().optional(),
  description: z.string().optional(),
  created: z.iso.datetime(),
  recipe: z.looseObject({ path: z.string(), sha256: sha256Hex }).optional(),
  source: z.looseObject({ method: z.string(), inputs: z.array(SourceInput).optional() }).optional(),
  rootfs: z.looseObject({
    tarSha256: sha256Hex,
    tarSize: z.number().int().nonnegative(),
    entries: z.number().int().nonnegative(),
  }),
  artifacts: z.array(ArtifactSchema).min(1),
  packages: z.array(PackageSchema).optional(),
});

export type Manifest = z.infer<typeof ManifestSchema>;
export type Artifact = z.infer<typeof ArtifactSchema>;
export type PackageEntry = z.infer<typeof PackageSchema>;

/** Largest manifest the registry accepts (DESIGN: "a manifest over 1 MiB" is refused). */
export const MAX_MANIFEST_BYTES = 1 << 20;

/** Parses and validates manifest bytes; `where` names the file or request in the error. */
export function parseManifest(bytes: Uint8Array | string, where = "manifest"): Manifest {
  const text = typeof bytes === "string" ? bytes : Buffer.from(bytes).toString("utf8");
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new UserError(`${where}: not valid JSON (${(err as Error).message})`);
  }
  const result = ManifestSchema.safeParse(data);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const path = issue.path.length ? issue.path.join(".") : "(top level)";
    throw new UserError(`${where}: field ${path}: ${issue.message}`);
  }
  return result.data;
}
