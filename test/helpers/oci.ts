import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { lstat, mkdir, readdir, readFile, readlink } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { runProcess } from "./registry-process.js";

/**
 * What Proxmox VE 9's `pct create` does with an oci-archive that `skopeo copy` wrote (pve-container
 * restore_oci_archive through the proxmox-oci crate): read index.json, pick the manifest for the
 * host's architecture, check every blob's digest, gunzip each layer checking that the uncompressed
 * bytes hash to the config's diff_id, and untar it into the root. Throws on any mismatch.
 */
export async function extractLikeProxmox(archive: string, layoutDir: string, rootfs: string, arch: string) {
  await mkdir(layoutDir, { recursive: true });
  await mkdir(rootfs, { recursive: true });
  await must(runProcess("tar", ["-xf", archive, "-C", layoutDir]));
  const blob = async (digest: string): Promise<Buffer> => {
    const [algo, hex] = digest.split(":");
    if (algo !== "sha256" || !/^[0-9a-f]{64}$/.test(hex ?? "")) throw new Error(`bad digest ${digest}`);
    const bytes = await readFile(join(layoutDir, "blobs", "sha256", hex!));
    const got = createHash("sha256").update(bytes).digest("hex");
    if (got !== hex) throw new Error(`blob ${digest} hashes to sha256:${got}`);
    return bytes;
  };
  type Desc = { mediaType: string; digest: string; size: number; platform?: { architecture: string } };
  let index = JSON.parse(await readFile(join(layoutDir, "index.json"), "utf8")) as { manifests: Desc[] };
  for (;;) {
    const fits = index.manifests.filter((m) => !m.platform || m.platform.architecture === arch);
    const chosen = fits[0];
    if (!chosen) throw new Error(`no manifest for ${arch} in index.json`);
    const doc = JSON.parse((await blob(chosen.digest)).toString("utf8"));
    if (chosen.mediaType === "application/vnd.oci.image.index.v1+json") {
      index = doc;
      continue;
    }
    const manifest = doc as { config: Desc; layers: Desc[] };
    const config = JSON.parse((await blob(manifest.config.digest)).toString("utf8")) as {
      architecture: string;
      rootfs: { diff_ids: string[] };
      config?: { Entrypoint?: string[]; Cmd?: string[] };
    };
    if (config.architecture !== arch)
      throw new Error(`config architecture ${config.architecture}, not ${arch}`);
    const layers: { mediaType: string; diffId: string }[] = [];
    for (const [i, layer] of manifest.layers.entries()) {
      if (layer.mediaType !== "application/vnd.oci.image.layer.v1.tar+gzip")
        throw new Error(`layer ${layer.digest} is ${layer.mediaType}; Proxmox reads gzip layers`);
      await blob(layer.digest);
      const path = join(layoutDir, "blobs", "sha256", layer.digest.slice(7));
      const diffId = await untarGzip(path, rootfs);
      if (diffId !== config.rootfs.diff_ids[i])
        throw new Error(
          `layer ${i}: uncompressed sha256:${diffId} is not diff_id ${config.rootfs.diff_ids[i]}`,
        );
      layers.push({ mediaType: layer.mediaType, diffId });
    }
    return { manifest, config, layers };
  }
}

/** Gunzips `path` once, hashing the tar stream while GNU tar extracts it; gives sha256:<hex>. */
async function untarGzip(path: string, into: string): Promise<string> {
  const hash = createHash("sha256");
  const tar = spawn("tar", ["--numeric-owner", "-xpf", "-", "-C", into], {
    stdio: ["pipe", "ignore", "pipe"],
  });
  let stderr = "";
  tar.stderr.on("data", (d) => {
    stderr += d;
  });
  const exited = new Promise<number>((r) => tar.on("close", (code) => r(code ?? -1)));
  const gunzip = createGunzip();
  gunzip.on("data", (d: Buffer) => hash.update(d));
  await pipeline(createReadStream(path), gunzip, tar.stdin);
  const code = await exited;
  if (code !== 0) throw new Error(`tar failed (${code}): ${stderr}`);
  return `sha256:${hash.digest("hex")}`;
}

async function must(p: Promise<{ code: number; stderr: string }>): Promise<void> {
  const r = await p;
  if (r.code !== 0) throw new Error(r.stderr);
}

/** Every entry under `dir` with type, mode, size, mtime, link target and content hash, sorted. */
export async function treeListing(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string) => {
    for (const name of (await readdir(join(dir, rel))).sort()) {
      const path = join(rel, name);
      const st = await lstat(join(dir, path));
      const common = `${path} mode=${(st.mode & 0o7777).toString(8)} uid=${st.uid} gid=${st.gid}`;
      if (st.isSymbolicLink()) out.push(`${common} -> ${await readlink(join(dir, path))}`);
      else if (st.isDirectory()) {
        out.push(`${common} dir`);
        await walk(path);
      } else {
        const sum = createHash("sha256")
          .update(await readFile(join(dir, path)))
          .digest("hex");
        out.push(`${common} mtime=${Math.floor(st.mtimeMs / 1000)} nlink=${st.nlink} ${sum}`);
      }
    }
  };
  await walk("");
  return out;
}
