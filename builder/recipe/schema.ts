import { z } from "zod";
import { FORMATS, type Format, HOST_BUNDLES, type HostMetaFormat } from "../../common/formats.js";
import { isVersion, templateNameProblem } from "../../common/names.js";

/**
 * The recipe format (docs/formats.md "Recipes"), declared once. `RecipeFileSchema` checks one YAML
 * document after `extends:` has been merged; the `source:` block and each step are checked
 * again by the schema of their source method / step kind (builder/sources, builder/steps), so
 * a new method or kind brings its own keys without touching this file.
 */

/** Architectures a recipe may name (OpenVZ's spelling; common/names.ts maps them to Debian's). */
export const ARCHES = ["x86_64", "aarch64"] as const;
export type Arch = (typeof ARCHES)[number];

const nameSegment = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._]*$/, "expected lower case letters, digits, '.' or '_'");

export const RecipeFileSchema = z.strictObject({
  /** Relative path to a base recipe; see builder/recipe/merge.ts for the merge rule. */
  extends: z.string().min(1).optional(),
  name: z
    .string()
    .refine((n) => templateNameProblem(n) === null, "expected a template name: [a-z0-9][a-z0-9._-]*")
    .optional(),
  /** A semantic version, or `auto`: the distro's point release and a build serial (builder/version-auto.ts). */
  version: z
    .string()
    .refine((v) => v === "auto" || isVersion(v), "expected a semantic version such as 13.2.0, or auto"),
  distro: nameSegment,
  release: z.union([z.string(), z.number()]).transform(String).pipe(nameSegment),
  arch: z.union([z.enum(ARCHES), z.array(z.enum(ARCHES)).min(1)]),
  flavour: nameSegment.optional(),
  description: z.string().optional(),
  /** Default SOURCE_DATE_EPOCH when neither --source-date-epoch nor $SOURCE_DATE_EPOCH is set. */
  created: z.union([z.iso.datetime(), z.iso.date()]).optional(),
  /** Checked further by the source method's own schema (builder/sources/index.ts). */
  source: z.looseObject({ method: z.string().min(1) }),
  /** Each item is `{ <kind>: <config> }`; checked further by the step kind's schema. */
  steps: z.array(z.record(z.string(), z.unknown())).default([]),
  /** Formats (tar.zst, tar.gz, tar.xz) and host names (lxc, incus: tar.xz and their metadata). */
  formats: z
    .array(z.enum([...FORMATS, ...(Object.keys(HOST_BUNDLES) as [string, ...string[]])]))
    .min(1)
    .optional(),
});

export type RecipeFile = z.infer<typeof RecipeFileSchema>;

/** A place in a recipe file, for error messages: `file:line:column`. */
export interface Place {
  file: string;
  line: number;
  col: number;
}

export function formatPlace(place: Place): string {
  return `${place.file}:${place.line}:${place.col}`;
}

export interface RecipeStep {
  kind: string;
  /** Validated by the step kind's schema. */
  config: unknown;
  place: Place;
}

/** One buildable template: a recipe after extends, validation and arch expansion. */
export interface Recipe {
  /** Path as given (relative to the working directory when inside it): the manifest's recipe.path. */
  path: string;
  /** sha256 of the recipe file's bytes; `bases` lists the files it extends, nearest first. */
  sha256: string;
  bases: { path: string; sha256: string }[];
  name: string;
  /** A semantic version, or "auto" (decided once the root exists). */
  version: string;
  distro: string;
  release: string;
  arch: Arch;
  flavour?: string;
  description?: string;
  /** Seconds since the epoch from `created:`, if given. */
  created?: number;
  source: { method: string; config: unknown; place: Place };
  steps: RecipeStep[];
  formats?: Format[];
  /** Host metadata tarballs the recipe's `formats:` asks for (lxc, incus). */
  meta?: HostMetaFormat[];
}

/** `<distro>-<release>-<arch>[-<flavour>]` (docs/formats.md "Names and versions"). */
export function deriveName(distro: string, release: string, arch: string, flavour?: string): string {
  return [distro, release, arch, flavour].filter(Boolean).join("-");
}
