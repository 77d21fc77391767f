import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { S3Client } from "@aws-sdk/client-s3";
import { errorMessage } from "../../common/errors.js";
import type { S3Options } from "./s3-config.js";
import { s3Status } from "./s3-util.js";

// The SDK warns on Node 20 about its own future support policy: a multi-line warning in the
// middle of the registry's JSON log lines, and nothing an operator of this release can act on.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

/** One line an operator can act on: which endpoint, which bucket, what is wrong. */
export function describeS3Failure(err: unknown, options: S3Options): string {
  const where = `s3://${options.bucket}/${options.prefix}${options.endpoint ? ` at ${options.endpoint}` : ""}`;
  const name = (err as { name?: string; Code?: string })?.name ?? "";
  const status = s3Status(err);
  const code = (err as { Code?: string })?.Code ?? name;
  if (code === "NoSuchBucket" || (status === 404 && !code.includes("Key"))) {
    return `S3 storage ${where}: bucket '${options.bucket}' does not exist`;
  }
  if (code === "SignatureDoesNotMatch") {
    return `S3 storage ${where}: the secret access key is wrong (SignatureDoesNotMatch)`;
  }
  if (code === "InvalidAccessKeyId") return `S3 storage ${where}: unknown access key id (InvalidAccessKeyId)`;
  if (status === 403)
    return `S3 storage ${where}: access denied (${code || "403"}); check credentials and policy`;
  if (name === "CredentialsProviderError" || /credential/i.test(errorMessage(err))) {
    return `S3 storage ${where}: no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile)`;
  }
  if (status === undefined) {
    const cause = (err as { code?: string })?.code ?? errorMessage(err);
    return `S3 storage ${where}: endpoint unreachable (${cause})`;
  }
  return `S3 storage ${where}: ${code || "error"} (HTTP ${status}): ${errorMessage(err)}`;
}

/**
 * One client per storage. Checksums only when an operation requires them: Ceph RGW (and other
 * S3-compatible servers) refuse the aws-chunked uploads the SDK sends by default.
 * A large socket pool: every streamed download holds a socket until the client has read it.
 */
export function createS3Client(options: S3Options): S3Client {
  const agentOptions = { keepAlive: true, maxSockets: 512 };
  return new S3Client({
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    region: options.region ?? "us-east-1",
    forcePathStyle: options.forcePathStyle ?? false,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    ...(options.accessKeyId && options.secretAccessKey
      ? {
          credentials: {
            accessKeyId: options.accessKeyId,
            secretAccessKey: options.secretAccessKey,
            ...(options.sessionToken ? { sessionToken: options.sessionToken } : {}),
          },
        }
      : {}),
    maxAttempts: 3,
    // Options for the SDK's own Node handler (it builds a NodeHttpHandler from them).
    requestHandler: {
      connectionTimeout: 5000,
      httpAgent: new HttpAgent(agentOptions),
      httpsAgent: new HttpsAgent(agentOptions),
    },
  });
}
