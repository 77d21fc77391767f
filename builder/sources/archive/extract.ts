import { spawn } from "node:child_process";
import { createReadStream, createWriteStream } from "node:fs";
import { lstat, open, readdir, rm } from "node:fs/promises";
import { pipeline } from "node:stream/promises";
import { ExitCode, UserError } from "../../../common/errors.js";
import { compressionOf } from "../../../common/formats.js";
import { formatBytes } from "../../../common/progress.js";
import { hostToolEnv } from "../../exec.js";
import { joinInRoot } from "../../rootfs.js";
import { listTar, type Member } from "./tar-list.js";

/**
 * Safe extraction of untrusted tar archives into a root directory. Two passes over one
 * uncompressed tar file: first the whole member list (from GNU tar's own listing) is checked
 * against the rules below and against what is already on disk; only when every member passes
 * does GNU tar extract (ownership, modes, xattrs and ACLs kept, binary-safe). So a refused
 * archive leaves nothing behind. Refused:
 * - absolute names and names with a `..` component;
 * - a member written through a symlink (one from this archive or one already in the root);
 * - a directory where a symlink is (a symlink "replaced" by a directory later in the stream);
 * - relative symlinks that climb out of the root; hardlinks whose target is outside the root,
 *   behind a symlink, or not present;
 * - device nodes, unless the policy allows them (and then only under dev/);
 * - more than `maxBytes` of content (decompression bombs).
 * Absolute symlink targets are kept: inside the container they name the container's own
 * files, and extraction never follows a symlink.
 */
export interface ExtractPolicy {
  /** Allow character/block devices under dev/ (plain rootfs tarballs such as stage3 have them). */
  devices: boolean;
  /** Apply and drop OCI whiteouts (`.wh.<name>`, `.wh..wh..opq`): for stacked image layers. */
  whiteouts: boolean;
  maxBytes: number;
}

export const DEFAULT_MAX_BYTES = 16 * 1024 ** 3;

const WHITEOUT = ".wh.";
const OPAQUE = ".wh..wh..opq";

type Kind = "dir" | "symlink" | "other";

interface ScanResult {
  members: number;
  bytes: number;
  whiteouts: string[];
  opaque: string[];
}

function refuse(where: string, name: string, why: string): never {
  throw new UserError(
    `${where}: refusing member "${printable(name)}": ${why}; nothing was extracted`,
    ExitCode.verification,
  );
}

function printable(latin1: string): string {
  return Buffer.from(latin1, "latin1")
    .toString("utf8")
    .replace(/[\x00-\x1f\x7f]/g, "?");
}

/**
 * Splits a member name, or a name derived from one (what a whiteout hides), into components;
 * refuses absolute names and `..` (reported against `member`, the name in the archive).
 */
function components(name: string, where: string, member = name): string[] {
  if (name.startsWith("/")) refuse(where, member, "absolute path");
  const parts = name.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) refuse(where, member, "path contains '..'");
  return parts;
}

async function kindOnDisk(root: string, parts: string[]): Promise<Kind | null> {
  const st = await lstat(joinInRoot(root, parts)).catch(() => null);
  if (!st) return null;
  if (st.isSymbolicLink()) return "symlink";
  return st.isDirectory() ? "dir" : "other";
}

/** Checks every member; returns what extraction needs to know. Writes nothing. */
export async function scanTar(
  tarPath: string,
  root: string,
  policy: ExtractPolicy,
  where: string,
  signal?: AbortSignal,
): Promise<ScanResult> {
  const seen = new Map<string, Kind>();
  const kindOf = async (parts: string[]): Promise<Kind | null> => {
    const key = parts.join("/");
    if (seen.has(key)) return seen.get(key)!;
    const disk = await kindOnDisk(root, parts);
    if (disk) seen.set(key, disk);
    return disk;
  };
  const checkParents = async (parts: string[], name: string, what: string) => {
    for (let i = 1; i < parts.length; i++) {
      if ((await kindOf(parts.slice(0, i))) === "symlink") {
        refuse(where, name, `${what} goes through the symlink ${parts.slice(0, i).join("/")}`);
      }
    }
  };
  const result: ScanResult = { members: 0, bytes: 0, whiteouts: [], opaque: [] };
  for await (const m of listTar(tarPath, where, signal) as AsyncIterable<Member>) {
    result.members++;
    result.bytes += m.size;
    if (result.bytes > policy.maxBytes) {
      refuse(where, m.name, `content exceeds the limit of ${formatBytes(policy.maxBytes)}`);
    }
    const parts = components(m.name, where);
    if (parts.length === 0) {
      if (m.type !== "directory") refuse(where, m.name, "the root itself must be a directory");
      continue;
    }
    await checkParents(parts, m.name, "writing it");
    const base = parts[parts.length - 1]!;
    if (policy.whiteouts && base.startsWith(WHITEOUT)) {
      if (m.type !== "file") refuse(where, m.name, "a whiteout must be an empty regular file");
      const dir = parts.slice(0, -1);
      if (base === OPAQUE) {
        result.opaque.push(dir.join("/"));
        continue;
      }
      // What it hides goes through the member-name check: `.wh...` names the parent of its
      // directory (above the root at the top) and is refused there; `.wh..` names the directory
      // itself (the root at the top) and `.wh.` nothing, both dropped there as `.` and "" are.
      const target = components([...dir, base.slice(WHITEOUT.length)].join("/"), where, m.name);
      if (target.length !== dir.length + 1)
        refuse(where, m.name, "a whiteout must name an entry of its directory");
      result.whiteouts.push(target.join("/"));
      continue;
    }
    const existing = await kindOf(parts);
    switch (m.type) {
      case "directory":
        if (existing === "symlink") refuse(where, m.name, "a directory would replace a symlink");
        seen.set(parts.join("/"), "dir");
        continue;
      case "symlink": {
        const target = m.link!;
        if (!target.startsWith("/")) {
          let depth = parts.length - 1;
          for (const p of target.split("/")) {
            if (p === "..") depth--;
            else if (p !== "" && p !== ".") depth++;
            if (depth < 0)
              refuse(where, m.name, `symlink target "${printable(target)}" points outside the root`);
          }
        }
        seen.set(parts.join("/"), "symlink");
        continue;
      }
      case "hardlink": {
        const target = m.link!;
        if (target.startsWith("/"))
          refuse(where, m.name, `hardlink to the absolute path "${printable(target)}"`);
        const tparts = target.split("/").filter((p) => p !== "" && p !== ".");
        if (tparts.includes(".."))
          refuse(where, m.name, `hardlink target "${printable(target)}" contains '..'`);
        await checkParents(tparts, m.name, `its hardlink target ${printable(target)}`);
        const t = await kindOf(tparts);
        if (t === null || t === "dir")
          refuse(where, m.name, `hardlink target "${printable(target)}" is not a file in the root`);
        // A hardlink to a symlink is that symlink again: later members must not write through it.
        seen.set(parts.join("/"), t);
        continue;
      }
      case "chardev":
      case "blockdev":
        if (!policy.devices) refuse(where, m.name, "device nodes are not allowed in this kind of archive");
        if (parts[0] !== "dev") refuse(where, m.name, "device node outside /dev");
        seen.set(parts.join("/"), "other");
        continue;
      default:
        seen.set(parts.join("/"), "other");
    }
  }
  return result;
}

/**
 * Removes what a whiteout hides, without following symlinks (parents were checked by the scan);
 * joinInRoot refuses anything but plain names, so never the root or something above it.
 */
async function applyWhiteout(root: string, rel: string): Promise<void> {
  const parts = rel.split("/");
  for (let i = 1; i < parts.length; i++) {
    if ((await kindOnDisk(root, parts.slice(0, i))) !== "dir") return; // nothing below to remove
  }
  await rm(joinInRoot(root, parts), { recursive: true, force: true });
}

/** An opaque directory: what lower layers put in it goes (the directory stays). */
async function applyOpaque(root: string, rel: string): Promise<void> {
  const parts = rel.split("/").filter(Boolean);
  for (let i = 1; i <= parts.length; i++) {
    if ((await kindOnDisk(root, parts.slice(0, i))) !== "dir") return;
  }
  const dir = joinInRoot(root, parts);
  for (const name of await readdir(dir)) await rm(joinInRoot(dir, [name]), { recursive: true, force: true });
}

/** Scans, applies whiteouts (for layers) and extracts one uncompressed tar into root. */
export async function extractTar(
  tarPath: string,
  root: string,
  policy: ExtractPolicy,
  where: string,
  signal?: AbortSignal,
): Promise<{ members: number; bytes: number }> {
  const scan = await scanTar(tarPath, root, policy, where, signal);
  // Whiteouts hide what lower layers put there; entries of this layer come after.
  for (const dir of scan.opaque) await applyOpaque(root, dir);
  for (const path of scan.whiteouts) await applyWhiteout(root, path);
  const args = [
    "-x",
    "-f",
    tarPath,
    "-C",
    root,
    "--numeric-owner",
    "--same-owner",
    "--same-permissions",
    "--xattrs",
    "--xattrs-include=*",
    "--acls",
    "--no-overwrite-dir",
  ];
  if (policy.whiteouts) args.push("--exclude=.wh.*");
  await runQuiet("tar", args, `${where}: extraction`, signal);
  return { members: scan.members, bytes: scan.bytes };
}

/** How each compression an upstream archive may use is undone (compressions: common/formats.ts). */
const DECOMPRESS_ARGV: Record<string, string[]> = {
  xz: ["xz", "-d", "-c", "-T0"],
  gzip: ["gzip", "-d", "-c"],
  zstd: ["zstd", "-d", "-c", "-q"],
  bzip2: ["bzip2", "-d", "-c"],
};

/** Compression by magic bytes: "xz", "gzip", "zstd", "bzip2", "tar" (none) or null (unknown). */
export async function detectCompression(path: string): Promise<string | null> {
  const fh = await open(path, "r");
  try {
    const head = Buffer.alloc(512);
    const { bytesRead } = await fh.read(head, 0, 512, 0);
    const compression = compressionOf(head.subarray(0, bytesRead));
    if (compression) return compression.name;
    if (bytesRead >= 262 && head.subarray(257, 262).toString("latin1") === "ustar") return "tar";
    return null;
  } finally {
    await fh.close();
  }
}

/**
 * Writes the uncompressed tar of `src` to `dest` with the system decompressor, stopping it as
 * soon as more than `maxBytes` come out.
 */
export async function decompressTo(
  src: string,
  dest: string,
  maxBytes: number,
  where: string,
  signal?: AbortSignal,
) {
  const kind = await detectCompression(src);
  if (kind === null) throw new UserError(`${where}: neither a tar archive nor xz, gzip, zstd or bzip2 data`);
  if (kind === "tar") {
    await pipeline(createReadStream(src), createWriteStream(dest));
    return;
  }
  const argv = DECOMPRESS_ARGV[kind]!;
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ["pipe", "pipe", "pipe"] });
  let out = 0;
  let bomb = false;
  let stderr = "";
  child.stderr.on("data", (c: Buffer) => {
    stderr += c.toString();
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on("error", (e: NodeJS.ErrnoException) =>
      reject(
        new UserError(
          e.code === "ENOENT" ? `${where}: '${argv[0]}' is not installed` : `${where}: ${e.message}`,
        ),
      ),
    );
    child.on("close", resolve);
  });
  const abort = () => child.kill("SIGTERM");
  signal?.addEventListener("abort", abort, { once: true });
  child.stdout.on("data", (c: Buffer) => {
    out += c.length;
    if (out > maxBytes && !bomb) {
      bomb = true;
      child.kill("SIGKILL");
    }
  });
  const input = pipeline(createReadStream(src), child.stdin).catch(() => undefined);
  const output = pipeline(child.stdout, createWriteStream(dest)).catch(() => undefined);
  const code = await exited;
  await Promise.all([input, output]);
  signal?.removeEventListener("abort", abort);
  if (signal?.aborted) throw new UserError("interrupted", 130);
  if (bomb) {
    await rm(dest, { force: true });
    throw new UserError(
      `${where}: decompresses to more than ${formatBytes(maxBytes)}: refusing it (raise source.maxSize if this is expected)`,
      ExitCode.verification,
    );
  }
  if (code !== 0)
    throw new UserError(`${where}: ${kind} -d failed: ${stderr.trim().split("\n").pop() ?? `exit ${code}`}`);
}

export function runQuiet(command: string, args: string[], what: string, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: ["ignore", "ignore", "pipe"],
      env: hostToolEnv(),
    });
    let stderr = "";
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    const abort = () => child.kill("SIGTERM");
    signal?.addEventListener("abort", abort, { once: true });
    child.on("error", (e) => reject(new UserError(`${what}: ${e.message}`)));
    child.on("close", (code) => {
      signal?.removeEventListener("abort", abort);
      if (signal?.aborted) return reject(new UserError("interrupted", 130));
      if (code === 0) return resolve();
      reject(new UserError(`${what} failed: ${stderr.trim().split("\n").pop() ?? `exit ${code}`}`));
    });
  });
}
