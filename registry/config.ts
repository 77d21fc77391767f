import { readFile, stat } from "node:fs/promises";
import { parseDocument } from "yaml";
import { z } from "zod";
import { writeFileAtomic } from "../common/atomic.js";
import { loadYamlFile, parseYaml } from "../common/config-file.js";
import { UserError } from "../common/errors.js";
import { S3ConfigSectionSchema } from "./storage/s3-config.js";
import type { RetentionRule } from "./store/retention.js";

/**
 * The registry's config file (YAML; `templar serve --config FILE`, default
 * $TEMPLAR_CONFIG, else templar-registry.yaml in the storage directory). Every field is optional:
 *
 *   anonymousPull: true        # GET without a token; false requires a pull token (API, pages,
 *                              # /precreated, /aplinfo.dat, /proxmox)
 *   metrics: public            # /metrics for anyone; `token`: any valid token (counters and stored
 *                              # totals, never template names); /healthz and /readyz stay open
 *   cacheTtl: 2s               # how long a process may reuse a name's version list
 *   gc:
 *     grace: 1h                # blobs younger than this are never collected
 *     interval: 1h             # periodic online GC inside `templar serve`; 0 turns it off
 *     uploadExpiry: 24h        # resumable uploads untouched this long are removed
 *   retention:                 # applied by GC (periodic and `templar gc`); first matching rule wins
 *     - match: "debian-*"      # template name glob
 *       keepNewest: 3          # the 3 newest versions (releases and pre-releases counted apart)
 *       keepTagged: true       # and every version a tag points at (default true)
 *       keepYoungerThan: 30d   # and every version pushed less than 30 days ago
 *       prereleases: separate  # or `together`: count pre-releases among the newest N
 *                              # (the highest release always stays)
 *   deltas:                    # zstd patches from older versions, made in the background after a push
 *     previous: 3              # from this many previous versions of the same template (0: none)
 *     level: 19                # zstd level of the patches
 *     maxWindowLog: 30         # no patch needing a zstd window above 2^30 bytes (tars over 512 MiB)
 *     workDir: /var/tmp        # where the tars are unpacked meanwhile (default: the temp folder)
 *   tokens:                    # written by `templar token create`; only hashes are stored
 *     - id: 3f9c2a1b           # public id, shown in logs instead of the token
 *       sha256: <hex of the token>
 *       scopes: ["push:debian-*", "pull:*"]
 *       created: 2026-11-25T13:00:00Z
 *   s3:                        # only with --storage s3://bucket/prefix; flags and env win
 *     endpoint: http://127.0.0.1:7480
 *     region: us-east-1
 *     forcePathStyle: true
 *     redirect: false          # true: blob GETs answer 307 to a presigned URL
 *     presignSeconds: 900
 *   pushPolicy:                # optional: only accept manifests signed by these keys
 *     keyrings: [maintainers.asc]   # public key files (armoured or binary); relative to this file
 *     fingerprints: []         # optional: of those keys, only these (40 hex) may sign
 *   indexKey:                  # the registry's own key: signs aplinfo.dat (templar key generate)
 *     file: index.key.asc
 *     passphraseFile: index.pass   # else TEMPLAR_INDEX_PASSPHRASE
 *   tls:                       # serve HTTPS; re-read when either file changes (certificate renewals)
 *     cert: /etc/templar/tls/fullchain.pem   # relative paths: to this file
 *     key: /etc/templar/tls/privkey.pem
 *   compat:
 *     maintainer: "Example Templates <templates@example.org>"   # aplinfo.dat Maintainer
 *     publicUrl: https://templates.example.org   # base for Infopage links (else the request's)
 *     hostImageBuilds: 3   # builds per image LXC's index and the simplestreams server offer (newest first)
 *   oci:                       # the OCI Distribution API under /v2 (README "Proxmox VE 9 and other OCI clients")
 *     prefix: templates        # repositories are <prefix>/<name> (default: just <name>)
 *     tokenTtl: 5m             # life of the bearer tokens /v2/token hands out
 */
export const DURATION = /^(\d+)(ms|s|m|h|d)$/;
const duration = z.string().regex(DURATION, "expected a duration such as 30s, 15m, 1h or 7d");
export const SCOPE = /^(admin|(pull|push|delete):[a-z0-9._*?-]+)$/;

export const TokenEntrySchema = z.object({
  id: z.string().regex(/^[0-9a-f]{8,32}$/, "expected 8-32 hex characters"),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, "expected the token's sha256 as 64 hex characters"),
  scopes: z
    .array(z.string().regex(SCOPE, "expected admin, pull:<glob>, push:<glob> or delete:<glob>"))
    .min(1),
  created: z.string().optional(),
  note: z.string().optional(),
});

export const RegistryConfigSchema = z.strictObject({
  anonymousPull: z.boolean().default(true),
  metrics: z.enum(["public", "token"]).default("public"),
  cacheTtl: duration.default("2s"),
  gc: z
    .strictObject({
      grace: duration.default("1h"),
      interval: z.union([duration, z.literal(0), z.literal("0")]).default("1h"),
      uploadExpiry: duration.default("24h"),
    })
    .prefault({}),
  retention: z
    .array(
      z
        .strictObject({
          match: z.string().regex(/^[a-z0-9._*?-]+$/, "expected a template name glob such as debian-*"),
          keepNewest: z.number().int().min(1).optional(),
          keepTagged: z.boolean().default(true),
          keepYoungerThan: duration.optional(),
          prereleases: z.enum(["separate", "together"]).default("separate"),
        })
        .refine((r) => r.keepNewest !== undefined || r.keepYoungerThan !== undefined, {
          message: "a retention rule needs keepNewest or keepYoungerThan (else it keeps everything)",
        }),
    )
    .default([]),
  deltas: z
    .strictObject({
      previous: z.number().int().min(0).max(16).default(3),
      level: z.number().int().min(1).max(22).default(19),
      maxWindowLog: z.number().int().min(20).max(31).default(30),
      workDir: z.string().min(1).optional(),
    })
    .prefault({}),
  tokens: z.array(TokenEntrySchema).default([]),
  /** S3 storage settings (endpoint, region, forcePathStyle, redirect, ...): registry/storage/s3-config.ts */
  s3: S3ConfigSectionSchema.optional(),
  pushPolicy: z
    .strictObject({
      keyrings: z.array(z.string().min(1)).min(1, "expected at least one public key file"),
      fingerprints: z
        .array(z.string().regex(/^(0x)?[0-9A-Fa-f ]{40,50}$/, "expected a 40 hex character fingerprint"))
        .default([]),
    })
    .optional(),
  indexKey: z.strictObject({ file: z.string().min(1), passphraseFile: z.string().optional() }).optional(),
  tls: z.strictObject({ cert: z.string().min(1), key: z.string().min(1) }).optional(),
  compat: z
    .strictObject({
      maintainer: z.string().default("templar registry"),
      publicUrl: z.url().optional(),
      hostImageBuilds: z.number().int().min(1).max(1000).default(3),
    })
    .prefault({}),
  oci: z
    .strictObject({
      prefix: z
        .string()
        .regex(
          /^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$/,
          "expected OCI repository path components such as templates or org/templates",
        )
        .optional(),
      tokenTtl: duration.default("5m"),
    })
    .prefault({}),
});

export type RegistryConfig = z.infer<typeof RegistryConfigSchema>;
export type TokenEntry = z.infer<typeof TokenEntrySchema>;

export { DEFAULT_CONFIG_FILE } from "./config-name.js";

export function parseDuration(text: string | number, what = "duration"): number {
  if (text === 0 || text === "0") return 0;
  const m = DURATION.exec(String(text));
  if (!m)
    throw new UserError(`${what} ${JSON.stringify(text)}: expected a duration such as 30s, 15m, 1h or 7d`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as "ms"];
  return Number(m[1]) * unit;
}

/** Loads and validates the config; a missing file means the defaults. */
export function loadConfig(path: string): Promise<RegistryConfig> {
  return loadYamlFile(path, RegistryConfigSchema, "config", {});
}

export function parseConfig(text: string, path: string): RegistryConfig {
  return parseYaml(text, RegistryConfigSchema, `config ${path}`);
}

/** Adds a token entry, keeping the rest of the file (comments included); written atomically. */
export async function addTokenToConfig(path: string, entry: TokenEntry): Promise<void> {
  let text = "";
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    text = "# templar registry configuration: see registry/config.ts for every field\nanonymousPull: true\n";
  }
  parseConfig(text, path); // refuse to extend a file that is already invalid
  const doc = parseDocument(text);
  if (!doc.has("tokens") || doc.get("tokens") == null) doc.set("tokens", doc.createNode([]));
  const tokens = doc.get("tokens") as { add(v: unknown): void };
  tokens.add(doc.createNode(entry));
  await writeFileAtomic(path, doc.toString());
}

/** Re-reads the config when the file changes (at most once a second), so new tokens work without a restart. */
export class ConfigWatcher {
  private lastCheck = 0;
  private signature = "";
  constructor(
    readonly path: string | null,
    public current: RegistryConfig,
    private readonly onError: (err: unknown) => void = () => {},
  ) {}

  static async open(path: string | null): Promise<ConfigWatcher> {
    const config = path ? await loadConfig(path) : RegistryConfigSchema.parse({});
    const w = new ConfigWatcher(path, config);
    w.signature = await w.fileSignature();
    w.lastCheck = Date.now();
    return w;
  }

  async get(): Promise<RegistryConfig> {
    if (!this.path || Date.now() - this.lastCheck < 1000) return this.current;
    this.lastCheck = Date.now();
    const sig = await this.fileSignature();
    if (sig !== this.signature) {
      try {
        this.current = await loadConfig(this.path);
        this.signature = sig;
      } catch (err) {
        this.onError(err); // keep serving with the last good config
      }
    }
    return this.current;
  }

  private async fileSignature(): Promise<string> {
    if (!this.path) return "";
    try {
      const st = await stat(this.path);
      return `${st.mtimeMs}:${st.size}:${st.ino}`;
    } catch {
      return "absent";
    }
  }
}

/** The config's retention rules with their durations in milliseconds (registry/store/retention.ts). */
export function retentionRules(config: RegistryConfig): RetentionRule[] {
  return config.retention.map((r) => ({
    match: r.match,
    keepNewest: r.keepNewest,
    keepTagged: r.keepTagged,
    keepYoungerThanMs:
      r.keepYoungerThan === undefined ? undefined : parseDuration(r.keepYoungerThan, "keepYoungerThan"),
    prereleases: r.prereleases,
  }));
}
