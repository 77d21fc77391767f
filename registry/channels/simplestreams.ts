import { archAs } from "../../common/arch.js";
import { parseDigest } from "../../common/digest.js";
import type { HostIdentity } from "../../common/host-identity.js";
import type { Ctx } from "../http/context.js";
import type { HostChannel } from "./channel.js";
import { aliasesOf, type HostImage, hostImages, perStateDocument, sendImageFile } from "./host-images.js";
import { sendSmall } from "./serve.js";

/**
 * A simplestreams image server, as Incus and LXD read one (`incus remote add NAME https://HOST
 * --protocol simplestreams`; README "Incus and LXD"):
 *
 *   GET /streams/v1/index.json    format index:1.0, one `images` stream naming images.json
 *   GET /streams/v1/images.json   format products:1.0, products `os:release:arch:variant`
 *   GET|HEAD /simplestreams/images/<os>/<release>/<arch>/<variant>/<build>/incus.tar.xz | rootfs.tar.xz
 *
 * Each version (key `YYYYMMDD_hhmm`, host-images.ts) has the metadata tarball twice, as
 * `incus.tar.xz` and as `lxd.tar.xz` (LXD looks for its own ftype; same file, same path), with
 * `combined_rootxz_sha256` = sha256(metadata ‖ rootfs.tar.xz), the image fingerprint, which the
 * packer computed and push checked. The template's semver is the `templar_version` property.
 * The documents are JSON with sorted keys and no time of their own, so replicas agree byte for byte.
 */
const productArch = (id: HostIdentity) => archAs(id.arch, "debian");

function itemPath(image: HostImage, build: string, file: string): string {
  const { id } = image;
  return `simplestreams/images/${id.distro}/${id.release}/${productArch(id)}/${id.variant}/${build}/${file}`;
}

function productId(id: HostIdentity): string {
  return `${id.distro}:${id.release}:${productArch(id)}:${id.variant}`;
}

/** JSON with object keys sorted at every level, two-space indented, final newline. */
function stableJson(value: unknown): Buffer {
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort);
    if (v && typeof v === "object") {
      return Object.fromEntries(
        Object.keys(v)
          .sort()
          .map((k) => [k, sort((v as Record<string, unknown>)[k])]),
      );
    }
    return v;
  };
  return Buffer.from(`${JSON.stringify(sort(value), null, 2)}\n`, "utf8");
}

async function images(c: Ctx): Promise<HostImage[]> {
  return hostImages(c, "incus-meta.tar.xz");
}

function imagesDocument(list: HostImage[]): Buffer {
  const products: Record<string, unknown> = {};
  for (const image of list) {
    const { id } = image;
    const versions: Record<string, unknown> = {};
    for (const build of image.builds) {
      const hex = (a: { digest: string }) => parseDigest(a.digest)!;
      const metaItem = (ftype: string) => ({
        ftype,
        path: itemPath(image, build.key, "incus.tar.xz"),
        sha256: hex(build.meta),
        size: build.meta.size,
        combined_rootxz_sha256: build.meta.combinedSha256,
        combined_sha256: build.meta.combinedSha256,
      });
      versions[build.key] = {
        items: {
          "incus.tar.xz": metaItem("incus.tar.xz"),
          "lxd.tar.xz": metaItem("lxd.tar.xz"),
          "root.tar.xz": {
            ftype: "root.tar.xz",
            path: itemPath(image, build.key, "rootfs.tar.xz"),
            sha256: hex(build.rootfs),
            size: build.rootfs.size,
          },
        },
        templar_name: image.name,
        templar_version: build.chosen.version,
      };
    }
    products[productId(id)] = {
      aliases: aliasesOf(image).join(","),
      arch: productArch(id),
      os: id.distro,
      release: id.release,
      release_title: id.codename ?? id.release,
      variant: id.variant,
      versions,
    };
  }
  return stableJson({
    content_id: "images",
    datatype: "image-downloads",
    format: "products:1.0",
    products,
  });
}

export async function getImagesJson(c: Ctx): Promise<Response> {
  const { body, etag } = await perStateDocument(c, "simplestreams images.json", async () =>
    imagesDocument(await images(c)),
  );
  return sendSmall(c, body, "application/json", null, etag);
}

export async function getIndexJson(c: Ctx): Promise<Response> {
  const { body, etag } = await perStateDocument(c, "simplestreams index.json", async () =>
    stableJson({
      format: "index:1.0",
      index: {
        images: {
          datatype: "image-downloads",
          format: "products:1.0",
          path: "streams/v1/images.json",
          products: (await images(c)).map((i) => productId(i.id)).sort(),
        },
      },
    }),
  );
  return sendSmall(c, body, "application/json", null, etag);
}

export function getItem(c: Ctx): Promise<Response> {
  return sendImageFile(c, "incus-meta.tar.xz", "incus.tar.xz", "os", productArch);
}

export const simplestreams: HostChannel = {
  name: "Incus/LXD simplestreams",
  paths: ["/streams/v1/*", "/simplestreams/*"],
  routes(app) {
    app.get("/streams/v1/index.json", getIndexJson);
    app.get("/streams/v1/images.json", getImagesJson);
    app.get("/simplestreams/images/:os/:release/:arch/:variant/:build/:file", getItem);
  },
};
