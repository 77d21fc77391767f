import { z } from "zod";
import { usageError } from "../../common/errors.js";

/**
 * Where an S3 storage lives and how to reach it. Filled from `--storage s3://bucket/prefix`,
 * flags, the config file's `s3:` section and the environment (see resolveS3Options); anything
 * left out falls to the AWS SDK's defaults (credential chain, region from ~/.aws/config).
 * No SDK import here: the config file schema uses this module, and the SDK is slow to load.
 */
export const S3OptionsSchema = z.object({
  bucket: z.string().min(3),
  /** Key prefix inside the bucket: "" or ending in "/". */
  prefix: z.string(),
  endpoint: z.url().optional(),
  region: z.string().min(1).optional(),
  forcePathStyle: z.boolean().optional(),
  accessKeyId: z.string().min(1).optional(),
  secretAccessKey: z.string().min(1).optional(),
  sessionToken: z.string().min(1).optional(),
  /** Answer blob downloads with a redirect to a presigned URL instead of streaming them. */
  redirect: z.boolean().optional(),
  /** Lifetime of presigned URLs, seconds. */
  presignSeconds: z.number().int().positive().max(604800).optional(),
});
export type S3Options = z.infer<typeof S3OptionsSchema>;

/** The `s3:` section of the config file (everything but bucket and prefix, which --storage gives). */
export const S3ConfigSectionSchema = S3OptionsSchema.omit({ bucket: true, prefix: true }).partial().strict();
export type S3ConfigSection = z.infer<typeof S3ConfigSectionSchema>;

/** Parses "s3://bucket" or "s3://bucket/some/prefix" into bucket and a normalised key prefix. */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(url);
  if (!m?.[1] || !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(m[1])) {
    throw usageError(`--storage ${url}: expected s3://bucket or s3://bucket/prefix with a valid bucket name`);
  }
  const rawPrefix = (m[2] ?? "").replace(/^\/+|\/+$/g, "");
  if (rawPrefix.split("/").some((part) => part === "." || part === "..")) {
    throw usageError(`--storage ${url}: the key prefix may not contain '.' or '..' segments`);
  }
  return { bucket: m[1], prefix: rawPrefix ? `${rawPrefix}/` : "" };
}

function envBool(name: string, env: Readonly<Record<string, string | undefined>>): boolean | undefined {
  const value = env[name];
  if (value === undefined || value === "") return undefined;
  if (/^(1|true|yes|on)$/i.test(value)) return true;
  if (/^(0|false|no|off)$/i.test(value)) return false;
  throw usageError(`${name}=${value}: expected true or false`);
}

/**
 * Merges the sources in the order settings always take: flags, then environment (TEMPLAR_S3_*, then the AWS
 * conventions), then the config file. Credentials are taken from here only when both halves are
 * given; otherwise the SDK's default chain (env, ~/.aws, instance roles) finds them.
 */
export function resolveS3Options(
  storageUrl: string,
  flags: Partial<S3ConfigSection>,
  config: Partial<S3ConfigSection> = {},
  env: Readonly<Record<string, string | undefined>>,
): S3Options {
  const { bucket, prefix } = parseS3Url(storageUrl);
  const pick = <T>(...values: (T | undefined)[]): T | undefined => values.find((v) => v !== undefined);
  const options = {
    bucket,
    prefix,
    endpoint: pick(
      flags.endpoint,
      env.TEMPLAR_S3_ENDPOINT || undefined,
      env.AWS_ENDPOINT_URL || undefined,
      config.endpoint,
    ),
    region: pick(
      flags.region,
      env.TEMPLAR_S3_REGION || undefined,
      env.AWS_REGION || undefined,
      config.region,
    ),
    forcePathStyle: pick(
      flags.forcePathStyle,
      envBool("TEMPLAR_S3_FORCE_PATH_STYLE", env),
      config.forcePathStyle,
    ),
    accessKeyId: pick(flags.accessKeyId, config.accessKeyId),
    secretAccessKey: pick(flags.secretAccessKey, config.secretAccessKey),
    sessionToken: pick(flags.sessionToken, config.sessionToken),
    redirect: pick(flags.redirect, envBool("TEMPLAR_S3_REDIRECT", env), config.redirect),
    presignSeconds: pick(flags.presignSeconds, config.presignSeconds),
  };
  const parsed = S3OptionsSchema.safeParse(options);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw usageError(`S3 storage option ${issue.path.join(".")}: ${issue.message}`);
  }
  if (Boolean(parsed.data.accessKeyId) !== Boolean(parsed.data.secretAccessKey)) {
    throw usageError("S3 storage: give both an access key id and a secret access key, or neither");
  }
  return parsed.data;
}
