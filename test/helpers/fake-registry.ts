import { createHash, randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { generateSigningKey, type PrivateKey, readPrivateKeyFile } from "../../common/signing/keys.js";
import { signBytes } from "../../common/signing/signatures.js";

/**
 * A registry that serves whatever a test makes it serve (the real one refuses bad manifests):
 * manifests given as raw JSON, signed with a test key or not, blobs with Range/If-Range, and
 * blobs whose bytes do not match their digest. Every blob request is recorded.
 */
export interface FakeTemplate {
  /** The manifest as it is served (any JSON; `latest` and its version both resolve to it). */
  manifest: Record<string, unknown>;
  /** "good": signed by the test key; "other": a good signature over other bytes; "none". */
  signature: "good" | "other" | "none";
}

export interface FakeRegistry {
  url: string;
  /** The armoured public key file of the signing key. */
  keyring: string;
  blobRequests: { digest: string; range: string | null }[];
  /** Adds a random blob; returns its artifact entry for a manifest. */
  blob(size: number, format?: string): { format: string; digest: string; size: number; bytes: Buffer };
  /** Serves `bytes` for `digest` from now on (a registry whose storage went bad). */
  corrupt(digest: string, bytes: Buffer): void;
  publish(template: FakeTemplate): Promise<void>;
  /** Makes GET /v1/templates/<name> answer 404 (the template was deleted there). */
  remove(name: string): void;
  /** Answers every manifest GET of `name` with `bytes` (no checks at all). */
  raw(name: string, bytes: Buffer): void;
  close(): Promise<void>;
}

export function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** A manifest that passes every check except the ones a test breaks on purpose. */
export function baseManifest(
  name: string,
  version: string,
  artifacts: { format: string; digest: string; size: number }[],
  fields: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    schemaVersion: 1,
    name,
    version,
    distro: "debian",
    release: "13",
    arch: "x86_64",
    created: "2026-11-25T00:00:00Z",
    rootfs: { tarSha256: "a".repeat(64), tarSize: 1024, entries: 1 },
    artifacts: artifacts.map(({ format, digest, size }) => ({ format, digest, size })),
    ...fields,
  };
}

export async function startFakeRegistry(dir: string): Promise<FakeRegistry> {
  const generated = await generateSigningKey({ name: "Fake Registry Test Key" });
  const keyring = `${dir}/fake-registry.pub.asc`;
  await writeFile(keyring, generated.publicKeyArmored);
  await writeFile(`${dir}/fake-registry.key.asc`, generated.privateKeyArmored);
  const key: PrivateKey = await readPrivateKeyFile(`${dir}/fake-registry.key.asc`);

  const blobs = new Map<string, Buffer>();
  const manifests = new Map<string, { bytes: Buffer; signature: Buffer | null; version: string }>();
  const gone = new Set<string>();
  const blobRequests: FakeRegistry["blobRequests"] = [];

  const server = http.createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    const parts = path.split("/").filter(Boolean);
    if (parts[0] === "v1" && parts[1] === "blobs" && parts[2]) {
      const digest = parts[2];
      const bytes = blobs.get(digest);
      const range = req.headers.range ?? null;
      blobRequests.push({ digest, range });
      if (!bytes) return void res.writeHead(404).end();
      const m = range ? /^bytes=(\d+)-$/.exec(range) : null;
      const start = m && req.headers["if-range"] === `"${digest}"` ? Number(m[1]) : 0;
      const headers = { "content-length": String(bytes.length - start), etag: `"${digest}"` };
      if (start > 0) {
        res.writeHead(206, {
          ...headers,
          "content-range": `bytes ${start}-${bytes.length - 1}/${bytes.length}`,
        });
      } else res.writeHead(200, headers);
      return void res.end(bytes.subarray(start));
    }
    if (parts[0] === "v1" && parts[1] === "templates" && parts[2]) {
      const name = parts[2];
      const entry = manifests.get(name);
      if (parts.length === 3) {
        if (gone.has(name) || !entry) return void res.writeHead(404).end();
        return void res.writeHead(200, { "content-type": "application/json" }).end("{}");
      }
      if (!entry || gone.has(name)) return void res.writeHead(404).end();
      if (parts[4] === "signature") {
        if (!entry.signature) return void res.writeHead(404).end();
        return void res.writeHead(200).end(entry.signature);
      }
      return void res
        .writeHead(200, { "content-type": "application/json", etag: `"sha256:${sha256(entry.bytes)}"` })
        .end(entry.bytes);
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    keyring,
    blobRequests,
    blob(size, format = "tar.gz") {
      const bytes = randomBytes(size);
      const digest = `sha256:${sha256(bytes)}`;
      blobs.set(digest, bytes);
      return { format, digest, size, bytes };
    },
    corrupt(digest, bytes) {
      blobs.set(digest, bytes);
    },
    async publish({ manifest, signature }) {
      const bytes = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`);
      const signed =
        signature === "none"
          ? null
          : Buffer.from(await signBytes(key, signature === "good" ? bytes : Buffer.from("other bytes")));
      gone.delete(String(manifest.name));
      manifests.set(String(manifest.name), { bytes, signature: signed, version: String(manifest.version) });
    },
    remove(name) {
      gone.add(name);
    },
    raw(name, bytes) {
      manifests.set(name, { bytes, signature: null, version: "" });
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
