import { archAs } from "../../common/arch.js";
import { CodedError } from "../../common/error-codes.js";
import type { HostIdentity } from "../../common/host-identity.js";
import type { Ctx } from "../http/context.js";
import type { HostChannel } from "./channel.js";
import { hostImages, perStateDocument, type StateDocument, sendImageFile } from "./host-images.js";
import { sendSmall } from "./serve.js";

/**
 * LXC's image server layout, as `lxc-create -t download` (lxc-download) reads it (README
 * "LXC"):
 *
 *   GET /meta/1.0/index-system[.<compat>]   `dist;release;arch;variant;build;/images/.../`
 *   GET /meta/1.0/index-user[.<compat>]     the same (unprivileged containers; meta.tar.xz
 *                                           carries config-user for them)
 *   GET|HEAD /images/<dist>/<release>/<arch>/<variant>/<build>/rootfs.tar.xz | meta.tar.xz
 *
 * lxc-download takes the first line matching dist, release, arch and variant, so each image
 * has one line (its newest build) under its release number and one under its code name; every
 * build kept (compat.hostImageBuilds) stays downloadable. Arches are Debian's (amd64, arm64), as
 * images.linuxcontainers.org writes them.
 */
const lxcArch = (id: HostIdentity) => archAs(id.arch, "debian");

async function index(c: Ctx): Promise<StateDocument> {
  return perStateDocument(c, "lxc-download index", async () => {
    const lines: string[] = [];
    for (const image of await hostImages(c, "lxc-meta.tar.xz")) {
      const { id } = image;
      const newest = image.builds[0]!;
      const path = `/images/${id.distro}/${id.release}/${lxcArch(id)}/${id.variant}/${newest.key}/`;
      for (const release of id.codename ? [id.release, id.codename] : [id.release]) {
        lines.push(`${id.distro};${release};${lxcArch(id)};${id.variant};${newest.key};${path}`);
      }
    }
    return Buffer.from(
      lines
        .sort()
        .map((l) => `${l}\n`)
        .join(""),
      "utf8",
    );
  });
}

export async function getIndex(c: Ctx): Promise<Response> {
  const file = c.req.param("file") ?? "";
  if (!/^index-(system|user)(\.\d+)?$/.test(file)) {
    throw new CodedError(
      "NOT_FOUND",
      `no index ${JSON.stringify(file)} (expected index-system or index-user)`,
    );
  }
  const { body, etag } = await index(c);
  return sendSmall(c, body, "text/plain; charset=utf-8", null, etag);
}

export function getImageFile(c: Ctx): Promise<Response> {
  return sendImageFile(c, "lxc-meta.tar.xz", "meta.tar.xz", "dist", lxcArch);
}

export const lxcDownload: HostChannel = {
  name: "LXC lxc-download",
  paths: ["/meta/1.0/*", "/images/*"],
  routes(app) {
    app.get("/meta/1.0/:file", getIndex);
    app.get("/images/:dist/:release/:arch/:variant/:build/:file", getImageFile);
  },
};
