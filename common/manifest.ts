import { z } from "zod";
import { UserError } from "./errors.js";
import { ARTIFACT_FORMATS } from "./formats.js";
import { archProblem, isVersion, namePartProblem, templateNameProblem } from "./names.js";

/**
 * The template manifest (docs/formats.md). Declared once here and validated
 * wherever a manifest comes in (inspect, push, registry). Fields may be added later; existing
 * ones never change meaning, so unknown fields are kept (looseObject), not rejected.
 */
const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, "expected 64 lower-case hex characters");
const digest = z.string().regex(/^sha256:[0-9a-f]{64}$/, "expected sha256:<64 hex>");

export const SourceInput = z.looseObject({
  uri: z.string(),
  sha256: sha256Hex.optional(),
  /** How the input was verified: "pgp:<fingerprint>", "pinned-sha256", "https", "apt-release". */
  verified: z.string().optional(),
});

export const ArtifactSchema = z.looseObject({
  format: z.enum(ARTIFACT_FORMATS),
  digest,
  size: z.number().int().nonnegative(),
  /**
   * incus-meta.tar.xz only: sha256 of its bytes followed by the tar.xz artifact's bytes, the
   * image fingerprint Incus and LXD check (simplestreams `combined_rootxz_sha256`).
   */
  combinedSha256: sha256Hex.optional(),
});

export const PackageSchema = z.looseObject({
  name: z.string().min(1),
  version: z.string(),
  arch: z.string(),
});

/** A string checked by one of names.ts's `...Problem` functions; the issue says what is wrong. */
function checked(problem: (value: string) => string | null) {
  return z.string().superRefine((value, ctx) => {
    const why = problem(value);
    if (why) ctx.addIssue({ code: "custom", message: `${JSON.stringify(value.slice(0, 80))} ${why}` });
  });
}

/**
 * Name, version, arch, distro, release, flavour and format become file names on hosts (pull
 * writes `<name>_<version>_<arch>.tar.zst`) and words in the pages' shell commands, so each is
 * held to a strict alphabet here, where every reader of a manifest (client and registry) passes.
 */
export const ManifestSchema = z.looseObject({
  schemaVersion: z.literal(1),
  name: checked(templateNameProblem),
  version: z.string().refine(isVersion, "expected a semantic version such as 1.2.3 (at most 64 characters)"),
  distro: checked(namePartProblem).optional(),
  release: checked(namePartProblem).optional(),
  arch: checked(archProblem).optional(),
  flavour: checked(namePartProblem).optional(),
  /** The distro's own point release as the root says it (Debian's /etc/debian_version: 13.8). */
  distroRelease: z
    .string()
    .regex(/^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$/, "expected a release such as 13.8")
    .optional(),
  description: z.string().optional(),
  created: z.iso.datetime(),
  recipe: z.looseObject({ path: z.string(), sha256: sha256Hex }).optional(),
  source: z.looseObject({ method: z.string(), inputs: z.array(SourceInput).optional() }).optional(),
  rootfs: z.looseObject({
    tarSha256: sha256Hex,
    tarSize: z.number().int().nonnegative(),
    entries: z.number().int().nonnegative(),
  }),
  artifacts: z
    .array(ArtifactSchema)
    .min(1)
    .superRefine((artifacts, ctx) => {
      // One artifact per format: a host picks "the" tar.gz, and two could name different bytes.
      const seen = new Set<string>();
      artifacts.forEach((a, i) => {
        if (seen.has(a.format)) {
          ctx.addIssue({ code: "custom", path: [i, "format"], message: `a second ${a.format} artifact` });
        }
        seen.add(a.format);
        // The host metadata describes rootfs.tar.xz; Incus's entry must carry the fingerprint.
        if (
          (a.format === "lxc-meta.tar.xz" || a.format === "incus-meta.tar.xz") &&
          !artifacts.some((b) => b.format === "tar.xz")
        ) {
          ctx.addIssue({
            code: "custom",
            path: [i, "format"],
            message: `${a.format} without a tar.xz artifact`,
          });
        }
        if (a.format === "incus-meta.tar.xz" && a.combinedSha256 === undefined) {
          ctx.addIssue({
            code: "custom",
            path: [i, "combinedSha256"],
            message: "required for incus-meta.tar.xz",
          });
        }
        if (a.format !== "incus-meta.tar.xz" && a.combinedSha256 !== undefined) {
          ctx.addIssue({
            code: "custom",
            path: [i, "combinedSha256"],
            message: "only incus-meta.tar.xz has one",
          });
        }
      });
    }),
  packages: z.array(PackageSchema).optional(),
});

export type Manifest = z.infer<typeof ManifestSchema>;
export type Artifact = z.infer<typeof ArtifactSchema>;
export type PackageEntry = z.infer<typeof PackageSchema>;

/** Largest manifest the registry accepts: a larger one is refused (413 TOO_LARGE). */
export const MAX_MANIFEST_BYTES = 1 << 20;

/** Deepest nesting of objects and arrays a manifest may have (its own structure needs 4). */
export const MAX_MANIFEST_DEPTH = 32;

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * True when `text` nests objects/arrays deeper than `limit`. Checked before JSON.parse so no
 * reader (parser, zod, the pages) ever walks a pathologically deep document.
 */
function nestedDeeperThan(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > limit) return true;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return false;
}

/**
 * Parses and validates manifest bytes; `where` names the file or request in the error. Bytes
 * must be valid UTF-8 (a lenient decode would let two different byte strings, signed or hashed,
 * read as the same manifest).
 */
export function parseManifest(bytes: Uint8Array | string, where = "manifest"): Manifest {
  let text: string;
  if (typeof bytes === "string") text = bytes;
  else {
    try {
      text = utf8.decode(bytes);
    } catch {
      throw new UserError(`${where}: not valid UTF-8`);
    }
  }
  if (nestedDeeperThan(text, MAX_MANIFEST_DEPTH)) {
    throw new UserError(`${where}: JSON nested deeper than ${MAX_MANIFEST_DEPTH} levels`);
  }
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
