import { z } from "zod";
import { UserError } from "../../../common/errors.js";
import { CHECKSUM_FORMATS } from "./checksums.js";
import { LAYOUTS } from "./layouts.js";

/**
 * The `source:` block of `method: archive` (docs/formats.md "Recipes", recipes/ARCHIVE.md). URLs may use placeholders:
 * `{base}` (the `base:` key, so a mirror or a test server replaces one value), `{arch}` (x86_64,
 * aarch64), `{debarch}` (amd64, arm64: Gentoo's and OCI's spelling), `{release}`, and in
 * checksum/signature URLs `{artifact}` (the artifact's URL, once found).
 */
const url = z.string().min(1);
const fingerprint = z
  .string()
  .transform((s) => s.replace(/^0x/i, "").replace(/\s+/g, "").toUpperCase())
  .pipe(z.string().regex(/^[0-9A-F]{40}$/, "expected a full 40-hex-digit OpenPGP fingerprint"));

export const PinnedKeySchema = z
  .strictObject({
    fingerprint,
    /** Where the key material is: a URL or a file (relative to the recipe). */
    url: url.optional(),
    file: z.string().min(1).optional(),
  })
  .refine((k) => Boolean(k.url) !== Boolean(k.file), "give exactly one of url or file for the key material");

export const ArchiveConfigSchema = z
  .strictObject({
    method: z.literal("archive"),
    base: url.optional(),
    /** A fixed artifact URL. */
    url: url.optional(),
    /** An index naming the newest artifact (Gentoo's latest-stage3-*.txt). */
    index: z.strictObject({ url, format: z.literal("gentoo-latest") }).optional(),
    /** The newest file whose name matches, from the checksum file or a directory listing. */
    pattern: z
      .strictObject({ regex: z.string().min(1), listing: url.optional() })
      .refine((p) => {
        try {
          new RegExp(p.regex);
          return true;
        } catch {
          return false;
        }
      }, "regex is not a valid regular expression")
      .optional(),
    checksums: z.strictObject({ url, format: z.enum(CHECKSUM_FORMATS) }).optional(),
    signature: z
      .strictObject({
        /** clearsigned: the index and checksum file are clearsigned; detached: `url` signs the artifact. */
        kind: z.union([
          z.enum(["clearsigned", "detached"]),
          z.array(z.enum(["clearsigned", "detached"])).min(1),
        ]),
        url: url.optional(),
        keys: z.array(PinnedKeySchema).min(1),
      })
      .optional(),
    /** The artifact's sha256, pinned: enough trust on its own. */
    sha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, "expected 64 hex digits")
      .transform((s) => s.toLowerCase())
      .optional(),
    /** Accept an unsigned source because it came over HTTPS (recorded in the manifest). */
    trust: z.literal("https").optional(),
    layout: z.enum(LAYOUTS),
    /** Upper bound of the unpacked size in bytes (decompression bombs); default 16 GiB. */
    maxSize: z.number().int().positive().optional(),
  })
  .refine((c) => [c.url, c.index, c.pattern].filter(Boolean).length === 1, {
    message: "give exactly one of url, index or pattern to find the artifact",
  })
  .refine((c) => !c.pattern || c.pattern.listing || c.checksums, {
    message: "pattern needs a listing URL or a checksums file to search",
  })
  .refine((c) => !c.signature || kinds(c.signature.kind).includes("clearsigned") || c.signature.url, {
    message: "a detached signature needs signature.url",
  })
  .refine(
    (c) => !(c.signature && kinds(c.signature.kind).includes("clearsigned")) || c.checksums || c.index,
    {
      message: "a clearsigned signature needs a checksums file or an index to sign",
    },
  )
  .refine((c) => c.signature || c.sha256 || c.trust === "https", {
    message: "an unsigned source needs a pinned sha256 or an explicit `trust: https`",
  });

export type ArchiveConfig = z.infer<typeof ArchiveConfigSchema>;

export function kinds(kind: string | string[]): string[] {
  return Array.isArray(kind) ? kind : [kind];
}

export interface Placeholders {
  base?: string;
  arch: string;
  debarch: string;
  release: string;
  artifact?: string;
}

export function expand(template: string, values: Placeholders, where: string): string {
  return template.replace(/\{([a-z]+)\}/g, (whole, key: string) => {
    const value = (values as unknown as Record<string, string | undefined>)[key];
    if (value === undefined) throw new UserError(`${where}: ${whole} is not known here`);
    return key === "base" ? value.replace(/\/+$/, "") : value;
  });
}
