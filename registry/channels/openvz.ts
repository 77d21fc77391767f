import { sha256Hex } from "../../common/digest.js";
import { CodedError } from "../../common/error-codes.js";
import type { Format } from "../../common/formats.js";
import { templateNameProblem } from "../../common/names.js";
import { type Ctx, deps, need } from "../http/context.js";
import type { HostChannel } from "./channel.js";
import { channelParam, chooseVersion, pullableTemplates, sendArtifact, sendSmall } from "./serve.js";

/**
 * OpenVZ's template repository layout, as vztmpl-dl reads it (docs/http-api.md "Host channels"):
 *
 *   GET /precreated/.listing              one template name per line (vztmpl-dl --list-remote)
 *   GET|HEAD /precreated/<name>.tar.gz    newest release's artifact (also .tar.xz, .tar.zst)
 *   GET|HEAD /precreated/<name>.tar.gz.asc  its detached signature (CHECK_TEMPLATE_SIG=yes)
 *   the same below /precreated/<channel>/ (beta, or a tag: see serve.ts)
 *
 * vztmpl-dl runs `wget -q --spider URL` then `wget -N -P $TEMPLATE/cache URL`: Last-Modified is
 * the version's `created`, so a newer version is fetched again and an unchanged one is not.
 */
const FILE = /^(.+)\.(tar\.gz|tar\.xz|tar\.zst)(\.asc)?$/;

export async function getListing(c: Ctx): Promise<Response> {
  const channel = channelParam(c.req.param("channel"));
  const lines: string[] = [];
  for (const name of await pullableTemplates(c)) {
    if (await chooseVersion(c, name, channel)) lines.push(name);
  }
  const body = Buffer.from(lines.map((l) => `${l}\n`).join(""), "utf8");
  return sendSmall(c, body, "text/plain; charset=utf-8", null, `"sha256:${sha256Hex(body)}"`);
}

export async function getPrecreatedFile(c: Ctx): Promise<Response> {
  const channel = channelParam(c.req.param("channel"));
  const file = c.req.param("file") ?? "";
  const match = FILE.exec(file);
  const name = match?.[1] ?? "";
  if (!match || templateNameProblem(name) !== null) {
    throw new CodedError(
      "NOT_FOUND",
      `no template file ${JSON.stringify(file)} (expected <name>.tar.gz and the like)`,
    );
  }
  need(c, "pull", name);
  const format = match[2] as Format;
  const chosen = await chooseVersion(c, name, channel);
  if (!chosen) {
    throw new CodedError(
      "TEMPLATE_UNKNOWN",
      `no template named ${name}${channel ? ` in channel ${channel}` : ""}`,
    );
  }
  const artifact = chosen.manifest.artifacts.find((a) => a.format === format);
  if (!artifact) {
    throw new CodedError("ARTIFACT_UNKNOWN", `${name}@${chosen.version} has no ${format} artifact`);
  }
  c.header("X-Template-Version", chosen.version);
  if (!match[3]) return sendArtifact(c, artifact, chosen.lastModified);
  const sig = await deps(c).store.manifests.artifactSignature(name, chosen.version, format);
  if (!sig)
    throw new CodedError(
      "SIGNATURE_UNKNOWN",
      `the ${format} artifact of ${name}@${chosen.version} is not signed`,
    );
  return sendSmall(c, sig, "application/pgp-signature", chosen.lastModified, `"sha256:${sha256Hex(sig)}"`);
}

export const openvz: HostChannel = {
  name: "OpenVZ vztmpl-dl",
  paths: ["/precreated/*"],
  routes(app) {
    app.get("/precreated/.listing", getListing);
    app.get("/precreated/:channel/.listing", getListing);
    app.get("/precreated/:file", getPrecreatedFile);
    app.get("/precreated/:channel/:file", getPrecreatedFile);
  },
};
