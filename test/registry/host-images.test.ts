import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { hostImage as image } from "../helpers/host-image.js";
import {
  bearer,
  errorOf,
  pushTemplate,
  startTestRegistry,
  type TemplateFixture,
  type TestRegistry,
} from "../helpers/registry.js";

/**
 * How templates become LXC and Incus images (registry/channels/host-images.ts), with hand-made
 * manifests: code-name aliases, build keys, the newest-N limit, one image per identity, and the
 * push check of the Incus fingerprint. The real clients run in test/compat/lxc-incus.test.ts.
 */
interface ImagesJson {
  products: Record<
    string,
    { aliases: string; release_title: string; versions: Record<string, { templar_version: string }> }
  >;
}

let reg: TestRegistry;
beforeEach(async () => {
  reg = await startTestRegistry({ more: { compat: { hostImageBuilds: 2 } } });
});
afterEach(async () => reg.close());

async function push(t: TemplateFixture): Promise<void> {
  const res = await pushTemplate(reg.url, reg.tokens.push!, t);
  expect(res.status, await res.clone().text()).toBe(201);
}

describe("templates as LXC and Incus images", () => {
  it("code-name lines and aliases; keys from created, a minute apart when they collide; newest N builds", async () => {
    await push(image("debian-13-x86_64", "13.1.0", "2026-11-25T10:00:30Z"));
    await push(image("debian-13-x86_64", "13.2.0", "2026-11-25T10:00:59Z"));
    await push(image("debian-13-x86_64", "13.3.0", "2026-11-26T08:15:00Z"));
    await push(image("debian-13-x86_64", "13.0.0", "2026-11-01T00:00:00Z"));
    const index = await (await fetch(`${reg.url}/meta/1.0/index-system`)).text();
    expect(index).toBe(
      "debian;13;amd64;default;20261126_0815;/images/debian/13/amd64/default/20261126_0815/\n" +
        "debian;trixie;amd64;default;20261126_0815;/images/debian/13/amd64/default/20261126_0815/\n",
    );
    const images = (await (await fetch(`${reg.url}/streams/v1/images.json`)).json()) as ImagesJson;
    const product = images.products["debian:13:amd64:default"]!;
    expect(product.aliases).toBe(
      "debian/13,debian/13/default,debian/trixie,debian/trixie/default,debian-13-x86_64",
    );
    expect(product.release_title).toBe("trixie");
    // hostImageBuilds: 2 keeps 13.3.0 and 13.2.0; with 13.1.0 in the same minute, 13.2.0 would
    // be bumped, but 13.1.0 is beyond the limit.
    expect(
      Object.fromEntries(
        Object.entries(product.versions).map(([k, v]) => [
          k,
          (v as { templar_version: string }).templar_version,
        ]),
      ),
    ).toEqual({ "20261125_1000": "13.2.0", "20261126_0815": "13.3.0" });

    // The code-name path serves the same files.
    const byCodename = await fetch(
      `${reg.url}/images/debian/trixie/amd64/default/20261126_0815/rootfs.tar.xz`,
    );
    expect(byCodename.status).toBe(200);
  });

  it("versions created in the same minute get keys a minute apart, rising with the version", async () => {
    await reg.close();
    reg = await startTestRegistry({ more: { compat: { hostImageBuilds: 5 } } });
    for (const v of ["13.1.0", "13.2.0", "13.10.0"])
      await push(image("debian-13-x86_64", v, "2026-11-25T10:00:00Z"));
    const images = (await (await fetch(`${reg.url}/streams/v1/images.json`)).json()) as ImagesJson;
    const versions = images.products["debian:13:amd64:default"]!.versions;
    expect(Object.keys(versions).map((k) => [k, versions[k]!.templar_version])).toEqual([
      ["20261125_1000", "13.1.0"],
      ["20261125_1001", "13.2.0"],
      ["20261125_1002", "13.10.0"],
    ]);
  });

  it("two templates with one identity: the first by name serves it; flavours are their own images", async () => {
    await push(image("debian-13-x86_64", "13.1.0", "2026-11-25T10:00:00Z"));
    await push(image("zz-debian-copy", "13.1.0", "2026-11-25T10:00:00Z"));
    await push(image("debian-13-x86_64-slim", "13.1.0", "2026-11-25T10:00:00Z", { flavour: "slim" }));
    const images = (await (await fetch(`${reg.url}/streams/v1/images.json`)).json()) as ImagesJson;
    expect(Object.keys(images.products)).toEqual(["debian:13:amd64:default", "debian:13:amd64:slim"]);
    expect(images.products["debian:13:amd64:slim"]!.aliases).toBe(
      "debian/13/slim,debian/trixie/slim,debian-13-x86_64-slim",
    );
    expect(images.products["debian:13:amd64:default"]!.aliases).not.toContain("zz-debian-copy");
  });

  it("push refuses an Incus fingerprint that is not sha256(metadata + rootfs), and metadata without tar.xz", async () => {
    const wrong = image("debian-13-x86_64", "13.1.0", "2026-11-25T10:00:00Z", {}, "0".repeat(64));
    const res = await pushTemplate(reg.url, reg.tokens.push!, wrong);
    const err = await errorOf(res);
    expect(err.code).toBe("MANIFEST_INVALID");
    expect(err.message).toContain("combinedSha256");

    const noXz = JSON.parse(image("debian-13-x86_64", "13.2.0", "2026-11-25T10:00:00Z").manifest.toString());
    noXz.artifacts[0].format = "tar.gz";
    const put = await fetch(`${reg.url}/v1/templates/debian-13-x86_64/13.2.0`, {
      method: "PUT",
      headers: bearer(reg.tokens.push),
      body: JSON.stringify(noXz),
    });
    const e2 = await errorOf(put);
    expect(e2.status).toBe(400);
    expect(e2.message).toContain("without a tar.xz artifact");
    // Nothing half-written shows.
    expect(await (await fetch(`${reg.url}/meta/1.0/index-system`)).text()).toBe("");
  });

  it("unknown builds and files answer 404; the index names none of them", async () => {
    await push(image("debian-13-x86_64", "13.1.0", "2026-11-25T10:00:00Z"));
    for (const path of [
      "/images/debian/13/amd64/default/20991231_0000/rootfs.tar.xz",
      "/images/debian/13/amd64/default/20261125_1000/config",
      "/images/debian/13/arm64/default/20261125_1000/rootfs.tar.xz",
      "/images/debian/13/amd64/default/..%2F..%2Fx/rootfs.tar.xz",
      "/simplestreams/images/debian/13/amd64/default/20261125_1000/meta.tar.xz",
      "/meta/1.0/index-other",
    ]) {
      expect((await fetch(`${reg.url}${path}`)).status, path).toBe(404);
    }
    expect(
      (await fetch(`${reg.url}//images/debian/13/amd64/default/20261125_1000//meta.tar.xz`)).status,
    ).toBe(200);
  });

  it("the template page shows the LXC and Incus commands for the version it shows", async () => {
    await push(image("debian-13-x86_64-slim", "13.1.0", "2026-11-25T10:00:00Z", { flavour: "slim" }));
    const page = await (await fetch(`${reg.url}/templates/debian-13-x86_64-slim`)).text();
    const host = new URL(reg.url).host;
    expect(page).toContain(
      `lxc-create -t download -n c1 -- --server ${host} --dist debian --release 13 --arch amd64 --variant slim`,
    );
    expect(page).toContain(`incus remote add templar https://${host} --protocol simplestreams --public`);
    expect(page).toContain("incus launch templar:debian/13/slim c1");
    expect(page).toContain("served over HTTPS");
  });

  it("scoped: a pull token sees only its names in both indexes and files; without a token 401", async () => {
    await reg.close();
    reg = await startTestRegistry({
      anonymousPull: false,
      tokens: { push: ["push:*"], slim: ["pull:debian-13-x86_64-slim"] },
    });
    await push(image("debian-13-x86_64", "13.1.0", "2026-11-25T10:00:00Z"));
    await push(image("debian-13-x86_64-slim", "13.1.0", "2026-11-25T10:00:00Z", { flavour: "slim" }));
    const slim = bearer(reg.tokens.slim);
    expect((await fetch(`${reg.url}/meta/1.0/index-system`)).status).toBe(401);
    expect((await fetch(`${reg.url}/streams/v1/images.json`)).status).toBe(401);
    const index = await (await fetch(`${reg.url}/meta/1.0/index-system`, { headers: slim })).text();
    expect(index).toBe(
      "debian;13;amd64;slim;20261125_1000;/images/debian/13/amd64/slim/20261125_1000/\n" +
        "debian;trixie;amd64;slim;20261125_1000;/images/debian/13/amd64/slim/20261125_1000/\n",
    );
    const images = (await (
      await fetch(`${reg.url}/streams/v1/images.json`, { headers: slim })
    ).json()) as ImagesJson;
    expect(Object.keys(images.products)).toEqual(["debian:13:amd64:slim"]);
    const other = await fetch(`${reg.url}/images/debian/13/amd64/default/20261125_1000/rootfs.tar.xz`, {
      headers: slim,
    });
    expect(other.status).toBe(404);
    const own = await fetch(
      `${reg.url}/simplestreams/images/debian/13/amd64/slim/20261125_1000/rootfs.tar.xz`,
      {
        headers: slim,
      },
    );
    expect(own.status).toBe(200);
  });
});
