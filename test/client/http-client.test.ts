import http, { type IncomingHttpHeaders } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { RegistryClient, RegistryError } from "../../client/http.js";
import { UserError } from "../../common/errors.js";
import { parseRef } from "../../common/reference.js";

/**
 * The client's own rules, against small node:http servers that misbehave on purpose (the real
 * registry cannot be made to answer 503 or redirect on demand): retries, redirects and the
 * token, error lines.
 */
const servers: http.Server[] = [];

async function serve(handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((resolve) => s.close(resolve));
  }
});

const TOKEN = "tmpl_secret_token_value_0123456789";

describe("registry HTTP client", () => {
  it("retries idempotent requests on 5xx, and never retries a POST", async () => {
    let gets = 0;
    let posts = 0;
    const url = await serve((req, res) => {
      if (req.method === "POST") posts++;
      else gets++;
      if (req.method === "POST" || gets < 3) {
        res.writeHead(503, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: { code: "UNAVAILABLE", message: "try later" } }));
        return;
      }
      res.end('{"templates":[]}');
    });
    const client = new RegistryClient({ registry: url, token: TOKEN, backoffMs: 5 });
    expect(await client.getJson("v1/templates")).toEqual({ templates: [] });
    expect(gets).toBe(3);
    const error = await client.request("POST", "v1/uploads").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as Error).message).toBe("registry said 503 UNAVAILABLE: try later");
    expect(posts).toBe(1);
  });

  it("sends the token to the registry only, not to the host a redirect points to", async () => {
    const seen: Record<string, IncomingHttpHeaders> = {};
    const other = await serve((req, res) => {
      seen.other = req.headers;
      res.end("blob bytes");
    });
    const registry = await serve((req, res) => {
      if (req.url?.startsWith("/v1/blobs/")) {
        seen.registry = req.headers;
        res.writeHead(307, { location: `${other}/bucket/object?X-Amz-Signature=abc` });
        res.end();
        return;
      }
      seen.same = req.headers;
      res.end("{}");
    });
    const client = new RegistryClient({ registry, token: TOKEN });
    const reply = await client.request("GET", `v1/blobs/sha256:${"a".repeat(64)}`);
    expect((await reply.buffer()).toString()).toBe("blob bytes");
    expect(seen.registry?.authorization).toBe(`Bearer ${TOKEN}`);
    expect(seen.other?.authorization).toBeUndefined();
  });

  it("turns error answers into one line without the token, and names unreachable registries", async () => {
    const url = await serve((req, res) => {
      res.writeHead(req.headers.authorization ? 403 : 401, { "content-type": "text/html" });
      res.end("<html>\n<body>denied</body>\n</html>");
    });
    const anonymous = new RegistryClient({ registry: url });
    const e401 = await anonymous.request("GET", "v1/templates").catch((e: unknown) => e);
    expect((e401 as Error).message).toMatch(
      /^registry said 401 unauthorized: Unauthorized \(no token: pass --token/,
    );
    const withToken = new RegistryClient({ registry: url, token: TOKEN });
    const e403 = await withToken
      .request("PUT", "v1/templates/a/1.0.0", { what: "push a@1.0.0" })
      .catch((e) => e);
    expect((e403 as Error).message).toMatch(/^push a@1\.0\.0: registry said 403 .*lacks the scope/);
    expect((e403 as Error).message).not.toContain(TOKEN);
    expect((e403 as Error).message).not.toContain("\n");

    const closed = await serve(() => {});
    servers.pop()?.close();
    const down = new RegistryClient({ registry: closed, token: TOKEN, attempts: 2, backoffMs: 5 });
    const e = await down.getJson("v1/templates").catch((err: unknown) => err);
    expect(e).toBeInstanceOf(UserError);
    expect((e as Error).message).toMatch(
      /cannot reach registry http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\) \(after 2 attempts\)/,
    );
  });

  it("says which answer was larger than the client reads, and from which URL, as a UserError", async () => {
    const url = await serve((_req, res) => {
      res.end(Buffer.alloc(100_000, 0x41));
    });
    const client = new RegistryClient({ registry: url });
    const error = await client
      .getOptional("v1/templates/a/1.0.0/signature", "signature of a@1.0.0", 64 * 1024)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UserError);
    expect((error as Error).message).toBe(
      `signature of a@1.0.0: the answer from ${url}/v1/templates/a/1.0.0/signature is larger than this client's limit of 65536 bytes`,
    );
  });

  it("refuses credentials in the registry URL and parses references", () => {
    expect(() => new RegistryClient({ registry: `http://user:${TOKEN}@127.0.0.1:1` })).toThrow(
      /must not contain credentials/,
    );
    expect(() => new RegistryClient({ registry: "ftp://x" })).toThrow(/http:\/\/ or https:\/\//);
    expect(parseRef("debian-13-x86_64")).toEqual({ name: "debian-13-x86_64", ref: "latest", kind: "tag" });
    expect(parseRef("debian-13-x86_64@13.2.0").kind).toBe("version");
    expect(parseRef("debian-13-x86_64@stable").kind).toBe("tag");
    expect(parseRef("debian-13-x86_64@>=13 <14").kind).toBe("range");
    expect(parseRef("debian-13-x86_64@^13.2").kind).toBe("range");
    expect(() => parseRef("debian-13-x86_64@")).toThrow(/nothing after '@'/);
    expect(() => parseRef("Debian@1")).toThrow(/template name/);
    expect(() => parseRef("debian@!!")).toThrow(/neither a version/);
  });
});
