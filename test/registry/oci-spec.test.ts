import { createHash, randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deriveImage } from "../../registry/channels/oci/image.js";
import { makeTemplate, pushTemplate, startTestRegistry, type TestRegistry } from "../helpers/registry.js";

/** The /v2 pull and content-discovery rules of distribution-spec v1.1, checked one by one. */
const INDEX = "application/vnd.oci.image.index.v1+json";
const MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const sha = (b: Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

let reg: TestRegistry;
let closed: TestRegistry;
const zst = randomBytes(3000);
const gz = randomBytes(5000);
const NAME = "debian-13-x86_64-oci";

beforeAll(async () => {
  reg = await startTestRegistry();
  const t = makeTemplate(NAME, "13.2.0", { blobs: [zst, gz] });
  expect((await pushTemplate(reg.url, reg.tokens.push!, t)).status).toBe(201);
  for (const v of ["13.1.0", "13.3.0-rc.1", "12.0.0"]) {
    const res = await pushTemplate(
      reg.url,
      reg.tokens.push!,
      makeTemplate(NAME, v, { blobs: [randomBytes(100)] }),
    );
    expect(res.status).toBe(201);
  }
  const put = await fetch(`${reg.url}/v1/templates/${NAME}/tags/stable`, {
    method: "PUT",
    headers: { authorization: `Bearer ${reg.tokens.push}` },
    body: "13.1.0",
  });
  expect(put.status).toBeLessThan(300);
  closed = await startTestRegistry({
    anonymousPull: false,
    tokens: { push: ["push:*"], pull: ["pull:debian-*"], other: ["pull:centos-*"] },
  });
  expect((await pushTemplate(closed.url, closed.tokens.push!, t)).status).toBe(201);
});
afterAll(async () => {
  await reg?.close();
  await closed?.close();
});

async function errors(res: Response): Promise<string[]> {
  const body = (await res.json()) as { errors: { code: string }[] };
  return body.errors.map((e) => e.code);
}

describe("OCI /v2 pull side", () => {
  it("GET /v2/ answers 200 with the API version header when anonymous pull is on", async () => {
    const res = await fetch(`${reg.url}/v2/`);
    expect(res.status).toBe(200);
    expect(res.headers.get("docker-distribution-api-version")).toBe("registry/2.0");
  });

  it("a tag serves the image index; its digest, HEAD and the by-digest GET agree", async () => {
    const res = await fetch(`${reg.url}/v2/${NAME}/manifests/13.2.0`, {
      headers: { accept: `${INDEX}, ${MANIFEST}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe(INDEX);
    const bytes = new Uint8Array(await res.arrayBuffer());
    const digest = res.headers.get("docker-content-digest");
    expect(digest).toBe(sha(bytes));
    const index = JSON.parse(Buffer.from(bytes).toString()) as {
      manifests: { digest: string; mediaType: string; platform: { architecture: string; os: string } }[];
    };
    expect(index.manifests).toHaveLength(2);
    expect(index.manifests.map((m) => m.platform)).toEqual([
      { architecture: "amd64", os: "linux" },
      { architecture: "amd64", os: "linux" },
    ]);

    const head = await fetch(`${reg.url}/v2/${NAME}/manifests/13.2.0`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("docker-content-digest")).toBe(digest);
    expect(Number(head.headers.get("content-length"))).toBe(bytes.length);
    expect((await head.arrayBuffer()).byteLength).toBe(0);

    const byDigest = await fetch(`${reg.url}/v2/${NAME}/manifests/${digest}`);
    expect(byDigest.status).toBe(200);
    expect(new Uint8Array(await byDigest.arrayBuffer())).toEqual(bytes);

    // gzip first: the manifest Proxmox's extractor can read; its layer is the tar.gz blob itself
    const first = await fetch(`${reg.url}/v2/${NAME}/manifests/${index.manifests[0]!.digest}`);
    expect(first.headers.get("content-type")).toBe(MANIFEST);
    const manifest = (await first.json()) as {
      config: { digest: string };
      layers: { mediaType: string; digest: string; size: number }[];
    };
    expect(manifest.layers).toEqual([
      { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: sha(gz), size: gz.length },
    ]);
    const second = (await (
      await fetch(`${reg.url}/v2/${NAME}/manifests/${index.manifests[1]!.digest}`)
    ).json()) as typeof manifest;
    expect(second.layers[0]!.mediaType).toBe("application/vnd.oci.image.layer.v1.tar+zstd");
    expect(second.layers[0]!.digest).toBe(sha(zst));

    const config = await fetch(`${reg.url}/v2/${NAME}/blobs/${manifest.config.digest}`);
    expect(config.status).toBe(200);
    const configBytes = new Uint8Array(await config.arrayBuffer());
    expect(sha(configBytes)).toBe(manifest.config.digest);
    expect(config.headers.get("docker-content-digest")).toBe(manifest.config.digest);
    const parsed = JSON.parse(Buffer.from(configBytes).toString());
    expect(parsed.rootfs).toEqual({ type: "layers", diff_ids: [sha(zst)] });
    expect(parsed.os).toBe("linux");
    expect(parsed.architecture).toBe("amd64");
    expect(parsed.config.Entrypoint).toEqual(["/sbin/init"]);
  });

  it("Accept negotiation: only an image manifest accepted gives the gzip manifest; only Docker types, 404", async () => {
    const index = await fetch(`${reg.url}/v2/${NAME}/manifests/latest`);
    expect(index.headers.get("content-type")).toBe(INDEX);
    const only = await fetch(`${reg.url}/v2/${NAME}/manifests/latest`, { headers: { accept: MANIFEST } });
    expect(only.status).toBe(200);
    expect(only.headers.get("content-type")).toBe(MANIFEST);
    const m = (await only.json()) as { layers: { digest: string }[] };
    expect(m.layers[0]!.digest).toBe(sha(gz));
    const docker = await fetch(`${reg.url}/v2/${NAME}/manifests/latest`, {
      headers: { accept: "application/vnd.docker.distribution.manifest.v2+json" },
    });
    expect(docker.status).toBe(404);
    expect(await errors(docker)).toEqual(["MANIFEST_UNKNOWN"]);
  });

  it("blobs: the layer with ranges and HEAD, and Docker-Content-Digest", async () => {
    const whole = await fetch(`${reg.url}/v2/${NAME}/blobs/${sha(gz)}`);
    expect(whole.status).toBe(200);
    expect(whole.headers.get("docker-content-digest")).toBe(sha(gz));
    expect(Buffer.from(await whole.arrayBuffer()).equals(gz)).toBe(true);
    const part = await fetch(`${reg.url}/v2/${NAME}/blobs/${sha(gz)}`, { headers: { range: "bytes=10-19" } });
    expect(part.status).toBe(206);
    expect(part.headers.get("content-range")).toBe(`bytes 10-19/${gz.length}`);
    expect(Buffer.from(await part.arrayBuffer()).equals(gz.subarray(10, 20))).toBe(true);
    const head = await fetch(`${reg.url}/v2/${NAME}/blobs/${sha(gz)}`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(Number(head.headers.get("content-length"))).toBe(gz.length);
  });

  it("404s carry the spec's codes; HEAD 404s have no body", async () => {
    const cases: [string, number, string][] = [
      [`/v2/${NAME}/manifests/9.9.9`, 404, "MANIFEST_UNKNOWN"],
      [`/v2/${NAME}/manifests/sha256:${"0".repeat(64)}`, 404, "MANIFEST_UNKNOWN"],
      [`/v2/${NAME}/manifests/^13`, 404, "MANIFEST_UNKNOWN"],
      [`/v2/nothing-here/manifests/latest`, 404, "NAME_UNKNOWN"],
      [`/v2/nothing-here/tags/list`, 404, "NAME_UNKNOWN"],
      [`/v2/${NAME}/blobs/sha256:${"0".repeat(64)}`, 404, "BLOB_UNKNOWN"],
      [`/v2/${NAME}/blobs/sha256:nothex`, 404, "BLOB_UNKNOWN"],
      [`/v2/${NAME}/blobs/not-a-digest`, 400, "DIGEST_INVALID"],
      [`/v2/Bad..Name/tags/list`, 400, "NAME_INVALID"],
    ];
    for (const [path, status, code] of cases) {
      const res = await fetch(`${reg.url}${path}`);
      expect([path, res.status]).toEqual([path, status]);
      expect(await errors(res)).toEqual([code]);
    }
    // a blob of another repository is not this repository's blob
    const other = makeTemplate("debian-12-x86_64-other", "1.0.0", { blobs: [randomBytes(64)] });
    expect((await pushTemplate(reg.url, reg.tokens.push!, other)).status).toBe(201);
    const cross = await fetch(`${reg.url}/v2/${NAME}/blobs/${sha(other.blobs[0]!)}`);
    expect(cross.status).toBe(404);
    const head = await fetch(`${reg.url}/v2/${NAME}/manifests/9.9.9`, { method: "HEAD" });
    expect(head.status).toBe(404);
    expect(await head.text()).toBe("");
  });

  it("push methods answer 405 UNSUPPORTED", async () => {
    const res = await fetch(`${reg.url}/v2/${NAME}/blobs/uploads/`, { method: "POST" });
    expect(res.status).toBe(405);
    expect(await errors(res)).toEqual(["UNSUPPORTED"]);
  });

  it("tags: versions, templar tags and latest, sorted, with n/last pagination and a Link", async () => {
    const all = (await (await fetch(`${reg.url}/v2/${NAME}/tags/list`)).json()) as {
      name: string;
      tags: string[];
    };
    expect(all).toEqual({
      name: NAME,
      tags: ["12.0.0", "13.1.0", "13.2.0", "13.3.0-rc.1", "latest", "stable"],
    });
    const first = await fetch(`${reg.url}/v2/${NAME}/tags/list?n=2`);
    expect(((await first.json()) as { tags: string[] }).tags).toEqual(["12.0.0", "13.1.0"]);
    expect(first.headers.get("link")).toBe(`</v2/${NAME}/tags/list?n=2&last=13.1.0>; rel="next"`);
    const next = await fetch(`${reg.url}/v2/${NAME}/tags/list?n=2&last=13.1.0`);
    expect(((await next.json()) as { tags: string[] }).tags).toEqual(["13.2.0", "13.3.0-rc.1"]);
    const end = await fetch(`${reg.url}/v2/${NAME}/tags/list?n=10&last=latest`);
    expect(((await end.json()) as { tags: string[] }).tags).toEqual(["stable"]);
    expect(end.headers.get("link")).toBeNull();
    const zero = await fetch(`${reg.url}/v2/${NAME}/tags/list?n=0`);
    expect(((await zero.json()) as { tags: string[] }).tags).toEqual([]);
    const bad = await fetch(`${reg.url}/v2/${NAME}/tags/list?n=-1`);
    expect(bad.status).toBe(400);
    // the stable tag resolves to its version's image
    const stable = await fetch(`${reg.url}/v2/${NAME}/manifests/stable`, { method: "HEAD" });
    const v131 = await fetch(`${reg.url}/v2/${NAME}/manifests/13.1.0`, { method: "HEAD" });
    expect(stable.headers.get("docker-content-digest")).toBe(v131.headers.get("docker-content-digest"));
  });

  it("_catalog lists repositories with pagination", async () => {
    const all = (await (await fetch(`${reg.url}/v2/_catalog`)).json()) as { repositories: string[] };
    expect(all.repositories).toEqual(["debian-12-x86_64-other", NAME]);
    const page = await fetch(`${reg.url}/v2/_catalog?n=1`);
    expect(((await page.json()) as { repositories: string[] }).repositories).toEqual([
      "debian-12-x86_64-other",
    ]);
    expect(page.headers.get("link")).toContain("last=debian-12-x86_64-other");
  });
});

describe("OCI token flow with anonymous pull off", () => {
  it("/v2/ challenges; the token endpoint trades a templar token for a bearer token with its scopes", async () => {
    const res = await fetch(`${closed.url}/v2/`);
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe(
      `Bearer realm="${closed.url}/v2/token",service="templar"`,
    );
    expect(await errors(res)).toEqual(["UNAUTHORIZED"]);
    const repo = await fetch(`${closed.url}/v2/${NAME}/tags/list`);
    expect(repo.headers.get("www-authenticate")).toContain(`scope="repository:${NAME}:pull"`);

    expect((await fetch(`${closed.url}/v2/token?service=templar`)).status).toBe(401);
    const wrong = Buffer.from("me:tmpl_wrong").toString("base64");
    expect(
      (await fetch(`${closed.url}/v2/token`, { headers: { authorization: `Basic ${wrong}` } })).status,
    ).toBe(401);

    const basic = Buffer.from(`anyone:${closed.tokens.pull}`).toString("base64");
    const tokenRes = await fetch(`${closed.url}/v2/token?service=templar&scope=repository:${NAME}:pull`, {
      headers: { authorization: `Basic ${basic}` },
    });
    expect(tokenRes.status).toBe(200);
    const body = (await tokenRes.json()) as { token: string; access_token: string; expires_in: number };
    expect(body.token).toBe(body.access_token);
    expect(body.expires_in).toBe(300);
    expect(body.token).not.toContain(closed.tokens.pull!);
    const auth = { authorization: `Bearer ${body.token}` };
    expect((await fetch(`${closed.url}/v2/`, { headers: auth })).status).toBe(200);
    expect((await fetch(`${closed.url}/v2/${NAME}/manifests/13.2.0`, { headers: auth })).status).toBe(200);
    // a MAC that does not hold, or a name outside the token's scope
    const forged = `${body.token.slice(0, -4)}AAAA`;
    expect(
      (await fetch(`${closed.url}/v2/`, { headers: { authorization: `Bearer ${forged}` } })).status,
    ).toBe(401);
    const otherBasic = Buffer.from(`x:${closed.tokens.other}`).toString("base64");
    const other = (await (
      await fetch(`${closed.url}/v2/token`, { headers: { authorization: `Basic ${otherBasic}` } })
    ).json()) as { token: string };
    const denied = await fetch(`${closed.url}/v2/${NAME}/tags/list`, {
      headers: { authorization: `Bearer ${other.token}` },
    });
    expect(denied.status).toBe(403);
    expect(await errors(denied)).toEqual(["DENIED"]);
    const catalog = (await (
      await fetch(`${closed.url}/v2/_catalog`, { headers: { authorization: `Bearer ${other.token}` } })
    ).json()) as { repositories: string[] };
    expect(catalog.repositories).toEqual([]);
  });
});

describe("multi-arch repositories", () => {
  it("the arch-free name indexes every arch's images; a token sees only the arches in its scope", async () => {
    const multi = await startTestRegistry({
      anonymousPull: false,
      tokens: { push: ["push:*"], amd: ["pull:debian-13-x86_64-*"] },
    });
    try {
      const amd = makeTemplate("debian-13-x86_64-multi", "13.2.0", {
        blobs: [randomBytes(30), randomBytes(40)],
      });
      const arm = makeTemplate("debian-13-aarch64-multi", "13.2.0", {
        arch: "aarch64",
        blobs: [randomBytes(50), randomBytes(60)],
      });
      const armOnly = makeTemplate("debian-13-aarch64-multi", "13.3.0", {
        arch: "aarch64",
        blobs: [randomBytes(70)],
      });
      for (const t of [arm, amd, armOnly])
        expect((await pushTemplate(multi.url, multi.tokens.push!, t)).status).toBe(201);
      const auth = { authorization: `Bearer ${multi.tokens.push}` };
      const res = await fetch(`${multi.url}/v2/debian-13-multi/manifests/13.2.0`, { headers: auth });
      expect(res.status).toBe(200);
      const bytes = new Uint8Array(await res.arrayBuffer());
      const index = JSON.parse(Buffer.from(bytes).toString()) as {
        manifests: { digest: string; platform: { architecture: string } }[];
      };
      expect(index.manifests.map((m) => m.platform.architecture)).toEqual([
        "amd64",
        "amd64",
        "arm64",
        "arm64",
      ]);
      const digest = res.headers.get("docker-content-digest")!;
      expect(digest).toBe(sha(bytes));
      const again = await fetch(`${multi.url}/v2/debian-13-multi/manifests/${digest}`, { headers: auth });
      expect(again.status).toBe(200);
      expect(new Uint8Array(await again.arrayBuffer())).toEqual(bytes);
      const armManifest = (await (
        await fetch(`${multi.url}/v2/debian-13-multi/manifests/${index.manifests[2]!.digest}`, {
          headers: auth,
        })
      ).json()) as { layers: { digest: string }[] };
      expect(armManifest.layers[0]!.digest).toBe(sha(arm.blobs[1]!));
      const layer = await fetch(`${multi.url}/v2/debian-13-multi/blobs/${sha(arm.blobs[1]!)}`, {
        headers: auth,
      });
      expect(Buffer.from(await layer.arrayBuffer()).equals(arm.blobs[1]!)).toBe(true);
      // a version only one arch has: that arch alone
      const only = await fetch(`${multi.url}/v2/debian-13-multi/manifests/13.3.0`, { headers: auth });
      const onlyIndex = (await only.json()) as { manifests: { platform: { architecture: string } }[] };
      expect(onlyIndex.manifests.map((m) => m.platform.architecture)).toEqual(["arm64"]);
      const tags = await (await fetch(`${multi.url}/v2/debian-13-multi/tags/list`, { headers: auth })).json();
      expect(tags).toEqual({ name: "debian-13-multi", tags: ["13.2.0", "13.3.0", "latest"] });
      const catalog = await (await fetch(`${multi.url}/v2/_catalog`, { headers: auth })).json();
      expect(catalog).toEqual({
        repositories: ["debian-13-aarch64-multi", "debian-13-multi", "debian-13-x86_64-multi"],
      });

      const amdOnly = { authorization: `Bearer ${multi.tokens.amd}` };
      const scoped = await fetch(`${multi.url}/v2/debian-13-multi/manifests/13.2.0`, { headers: amdOnly });
      const scopedIndex = (await scoped.json()) as { manifests: { platform: { architecture: string } }[] };
      expect(scopedIndex.manifests.map((m) => m.platform.architecture)).toEqual(["amd64", "amd64"]);
      const hidden = await fetch(`${multi.url}/v2/debian-13-multi/blobs/${sha(arm.blobs[1]!)}`, {
        headers: amdOnly,
      });
      expect(hidden.status).toBe(404);
      const anonymous = await fetch(`${multi.url}/v2/debian-13-multi/tags/list`);
      expect(anonymous.status).toBe(401);
    } finally {
      await multi.close();
    }
  });
});

describe("repository prefix and the template page", () => {
  it("oci.prefix puts every repository under it; the page shows the reference and the pvesh command", async () => {
    const prefixed = await startTestRegistry({ more: { oci: { prefix: "templates" } } });
    try {
      const t = makeTemplate(NAME, "13.2.0", { blobs: [randomBytes(10), randomBytes(20)] });
      expect((await pushTemplate(prefixed.url, prefixed.tokens.push!, t)).status).toBe(201);
      const tags = await fetch(`${prefixed.url}/v2/templates/${NAME}/tags/list`);
      expect(await tags.json()).toEqual({ name: `templates/${NAME}`, tags: ["13.2.0", "latest"] });
      const byTag = await fetch(`${prefixed.url}/v2/templates/${NAME}/manifests/13.2.0`, {
        method: "HEAD",
      });
      expect(byTag.status).toBe(200);
      const bare = await fetch(`${prefixed.url}/v2/${NAME}/tags/list`);
      expect(bare.status).toBe(404);
      expect(await errors(bare)).toEqual(["NAME_UNKNOWN"]);
      const catalog = await (await fetch(`${prefixed.url}/v2/_catalog`)).json();
      expect(catalog).toEqual({ repositories: [`templates/${NAME}`] });
      const page = await (await fetch(`${prefixed.url}/templates/${NAME}`)).text();
      const host = new URL(prefixed.url).host;
      expect(page).toContain(
        `pvesh create /nodes/$(hostname)/storage/local/oci-registry-pull --reference ${host}/templates/${NAME}:13.2.0`,
      );
      expect(page).toContain("Pull from OCI Registry");
    } finally {
      await prefixed.close();
    }
  });
});

describe("the derived image is a contract", () => {
  it("a fixed manifest always gives these digests (changing them breaks every pinned reference)", () => {
    const image = deriveImage(
      {
        schemaVersion: 1,
        name: "debian-13-aarch64-minimal",
        version: "13.2.0",
        arch: "aarch64",
        description: "Debian 13",
        created: "2026-11-25T00:00:00Z",
        rootfs: { tarSha256: "a".repeat(64), tarSize: 10, entries: 1 },
        artifacts: [
          { format: "tar.zst", digest: `sha256:${"b".repeat(64)}`, size: 5 },
          { format: "tar.xz", digest: `sha256:${"d".repeat(64)}`, size: 4 },
          { format: "tar.gz", digest: `sha256:${"c".repeat(64)}`, size: 6 },
        ],
      },
      "e".repeat(64),
    )!;
    expect(image.manifests.map((m) => [m.format, m.manifest.hex])).toEqual([
      ["tar.gz", "f4360f443c8aeeccc3caa14d9e71726bcdf7678fc0fa71c82fcb9a6e0669ed38"],
      ["tar.zst", "f57aa8878b497b7fb554fb8bcba6aa6903819b4b7a552efdb648ec621232b03a"],
    ]);
    expect(image.config.hex).toBe("49ca870118c6d321377c87035cde8e96a59e8172eacee7147f9d3949900d7a19");
    expect(image.index.hex).toBe("063ed7dbd13ca60c455f3f845d849836fc8bd1235c5d8239d6df45b2c64e3bc5");
    expect(JSON.parse(image.config.bytes.toString()).architecture).toBe("arm64");
  });

  it("a version with only tar.xz has no OCI image", () => {
    const image = deriveImage(
      {
        schemaVersion: 1,
        name: "debian-13-x86_64-xz",
        version: "1.0.0",
        created: "2026-11-25T00:00:00Z",
        rootfs: { tarSha256: "a".repeat(64), tarSize: 10, entries: 1 },
        artifacts: [{ format: "tar.xz", digest: `sha256:${"d".repeat(64)}`, size: 4 }],
      },
      "e".repeat(64),
    );
    expect(image).toBeNull();
  });
});
