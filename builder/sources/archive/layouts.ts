import { lstat, mkdir, mkdtemp, readFile, realpath, rm } from "node:fs/promises";
import { join, relative } from "node:path";
import { z } from "zod";
import { ExitCode, UserError } from "../../../common/errors.js";
import { hashFile } from "./checksums.js";
import { DEFAULT_MAX_BYTES, decompressTo, type ExtractPolicy, extractTar } from "./extract.js";

/**
 * How a downloaded (and already verified) artifact becomes a root filesystem:
 * - rootfs: the artifact is the rootfs tarball (Gentoo stage3), any compression; it may carry
 *   device nodes under /dev;
 * - docker-archive: `docker save` output (CentOS Stream, Fedora <= 39): manifest.json names the
 *   layers in order; each layer's sha256 is checked against the config's `rootfs.diff_ids`;
 * - oci: an OCI image layout (Fedora >= 40): index.json -> manifest -> layers; every blob is
 *   checked against its digest and size, and layers are stacked with whiteouts applied.
 * - image: docker-archive or OCI, whichever the archive turns out to be (CentOS Stream 10's
 *   format is not confirmed).
 * Image layers never contain device nodes (the runtime creates /dev), so they are refused there.
 */
export const LAYOUTS = ["rootfs", "docker-archive", "oci", "image"] as const;
export type Layout = (typeof LAYOUTS)[number];

export interface LayoutOptions {
  /** Work directory for the uncompressed tars (removed after). */
  workDir: string;
  /** OCI architecture to pick from a multi-platform index (amd64, arm64). */
  ociArch: string;
  maxBytes?: number;
  signal?: AbortSignal;
  log?: (line: string) => void;
}

export interface LayoutResult {
  layout: Layout;
  /** For `image`, the layout found inside. */
  found?: "oci" | "docker-archive";
  /** sha256 of each layer blob as checked, in stacking order. */
  layers: string[];
  members: number;
  bytes: number;
}

const Digest = z.string().regex(/^sha256:[0-9a-f]{64}$/, "expected sha256:<64 hex>");
const Descriptor = z.looseObject({
  mediaType: z.string().optional(),
  digest: Digest,
  size: z.number().int().nonnegative(),
  platform: z.looseObject({ architecture: z.string(), os: z.string().optional() }).optional(),
});
const OciIndex = z.looseObject({ manifests: z.array(Descriptor).min(1) });
const OciManifest = z.looseObject({ config: Descriptor, layers: z.array(Descriptor).min(1) });
const ImageConfig = z.looseObject({ rootfs: z.looseObject({ diff_ids: z.array(Digest) }).optional() });
const DockerManifest = z
  .array(z.looseObject({ Config: z.string(), Layers: z.array(z.string()).min(1) }))
  .length(1, "expected exactly one image");

function parseJson<T>(schema: z.ZodType<T>, text: string, where: string): T {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new UserError(`${where}: not valid JSON (${(err as Error).message})`, ExitCode.verification);
  }
  const result = schema.safeParse(data);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new UserError(
      `${where}: ${issue.path.join(".") || "(top level)"}: ${issue.message}`,
      ExitCode.verification,
    );
  }
  return result.data;
}

/** Resolves a path named inside the image to a regular file inside `dir`, or refuses. */
async function fileInside(dir: string, name: string, where: string): Promise<string> {
  const path = join(dir, name);
  const real = await realpath(path).catch(() => null);
  const rel = real ? relative(await realpath(dir), real) : "..";
  if (!real || rel.startsWith("..") || !(await lstat(real)).isFile()) {
    throw new UserError(`${where}: ${name} is missing or outside the image`, ExitCode.verification);
  }
  return real;
}

export async function applyLayout(
  layout: Layout,
  artifact: string,
  root: string,
  options: LayoutOptions,
): Promise<LayoutResult> {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  const work = await mkdtemp(join(options.workDir, "layout-"));
  try {
    const tar = join(work, "artifact.tar");
    await decompressTo(artifact, tar, maxBytes, "artifact", options.signal);
    if (layout === "rootfs") {
      const policy: ExtractPolicy = { devices: true, whiteouts: false, maxBytes };
      const r = await extractTar(tar, root, policy, "rootfs tarball", options.signal);
      return { layout, layers: [], ...r };
    }
    // The outer archive is a container of blobs: extracted (safely) into the work directory.
    const image = join(work, "image");
    await mkdir(image);
    await extractTar(
      tar,
      image,
      { devices: false, whiteouts: false, maxBytes },
      `${layout} archive`,
      options.signal,
    );
    await rm(tar);
    const isOci =
      layout === "oci" || (layout === "image" && (await lstat(join(image, "oci-layout")).catch(() => null)));
    const layers = isOci ? await ociLayers(image, options.ociArch) : await dockerLayers(image);
    let members = 0;
    let bytes = 0;
    const checked: string[] = [];
    for (const [i, layer] of layers.entries()) {
      const where = `layer ${i + 1} of ${layers.length} (${layer.name})`;
      const blob = await hashFile(layer.path, ["sha256"]);
      if (layer.digest && blob.digests.sha256 !== layer.digest) {
        throw new UserError(
          `${where}: sha256 is ${blob.digests.sha256}, the image says ${layer.digest}: refusing it`,
          ExitCode.verification,
        );
      }
      if (layer.size !== undefined && blob.size !== layer.size) {
        throw new UserError(
          `${where}: ${blob.size} bytes, the image says ${layer.size}`,
          ExitCode.verification,
        );
      }
      const layerTar = join(work, `layer-${i}.tar`);
      await decompressTo(layer.path, layerTar, maxBytes - bytes, where, options.signal);
      if (layer.diffId) {
        const diff = await hashFile(layerTar, ["sha256"]);
        if (diff.digests.sha256 !== layer.diffId) {
          throw new UserError(
            `${where}: uncompressed sha256 does not match the image config's diff_id`,
            ExitCode.verification,
          );
        }
      }
      options.log?.(`extracting ${where}`);
      const policy: ExtractPolicy = { devices: false, whiteouts: true, maxBytes: maxBytes - bytes };
      const r = await extractTar(layerTar, root, policy, where, options.signal);
      await rm(layerTar);
      members += r.members;
      bytes += r.bytes;
      checked.push(blob.digests.sha256!);
    }
    return { layout, found: isOci ? "oci" : "docker-archive", layers: checked, members, bytes };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

interface LayerRef {
  name: string;
  path: string;
  /** sha256 hex of the blob as stored (OCI), when the image names it. */
  digest?: string;
  size?: number;
  /** sha256 hex of the uncompressed layer (config rootfs.diff_ids). */
  diffId?: string;
}

const hexOf = (digest: string) => digest.slice("sha256:".length);

async function ociLayers(image: string, arch: string): Promise<LayerRef[]> {
  const layoutFile = await fileInside(image, "oci-layout", "OCI image");
  const version = parseJson(
    z.looseObject({ imageLayoutVersion: z.string() }),
    await readFile(layoutFile, "utf8"),
    "oci-layout",
  );
  if (!version.imageLayoutVersion.startsWith("1.")) {
    throw new UserError(`OCI image: unsupported imageLayoutVersion ${version.imageLayoutVersion}`);
  }
  const blob = async (d: z.infer<typeof Descriptor>, what: string) => {
    const path = await fileInside(image, join("blobs", "sha256", hexOf(d.digest)), `OCI ${what}`);
    const bytes = await readFile(path);
    const { digests } = await hashFile(path, ["sha256"]);
    if (digests.sha256 !== hexOf(d.digest) || bytes.length !== d.size) {
      throw new UserError(
        `OCI ${what} ${d.digest}: content does not match its digest or size`,
        ExitCode.verification,
      );
    }
    return bytes.toString("utf8");
  };
  let index = parseJson(
    OciIndex,
    await readFile(await fileInside(image, "index.json", "OCI image"), "utf8"),
    "index.json",
  );
  for (let depth = 0; depth < 4; depth++) {
    const candidates = index.manifests.filter((m) => !m.platform || m.platform.architecture === arch);
    const chosen = candidates[0];
    if (!chosen) throw new UserError(`OCI image: no manifest for architecture ${arch}`);
    const text = await blob(chosen, "manifest");
    const data = JSON.parse(text) as { manifests?: unknown; layers?: unknown };
    if (data.manifests) {
      index = parseJson(OciIndex, text, `OCI index ${chosen.digest}`);
      continue;
    }
    const manifest = parseJson(OciManifest, text, `OCI manifest ${chosen.digest}`);
    const config = parseJson(ImageConfig, await blob(manifest.config, "config"), "OCI image config");
    const diffIds = config.rootfs?.diff_ids ?? [];
    return Promise.all(
      manifest.layers.map(async (layer, i) => ({
        name: layer.digest,
        path: await fileInside(image, join("blobs", "sha256", hexOf(layer.digest)), "OCI layer"),
        digest: hexOf(layer.digest),
        size: layer.size,
        ...(diffIds[i] ? { diffId: hexOf(diffIds[i]) } : {}),
      })),
    );
  }
  throw new UserError("OCI image: image indexes nested too deep");
}

async function dockerLayers(image: string): Promise<LayerRef[]> {
  const manifestPath = await fileInside(image, "manifest.json", "docker-archive");
  const [entry] = parseJson(
    DockerManifest,
    await readFile(manifestPath, "utf8"),
    "docker-archive manifest.json",
  );
  const config = parseJson(
    ImageConfig,
    await readFile(await fileInside(image, entry!.Config, "docker-archive config"), "utf8"),
    `docker-archive ${entry!.Config}`,
  );
  const diffIds = config.rootfs?.diff_ids ?? [];
  if (diffIds.length !== entry!.Layers.length) {
    throw new UserError(
      "docker-archive: the config's diff_ids do not match the layer list",
      ExitCode.verification,
    );
  }
  return Promise.all(
    entry!.Layers.map(async (name, i) => ({
      name,
      path: await fileInside(image, name, "docker-archive layer"),
      diffId: hexOf(diffIds[i]!),
    })),
  );
}
