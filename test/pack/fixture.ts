import { execFileSync, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  chmodSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { parseGetfattr } from "../../builder/pack/xattrs.js";

/** A tree with every kind of entry the packer must keep (tests run as root). */
export const SDE = 1_700_000_000;
export const LONG_NAME = `${"n".repeat(120)}-long-file-name`;
export const DEEP_DIR = Array.from({ length: 6 }, (_, i) => `${"d".repeat(60)}${i}`).join("/");
export const UTF8_NAME = "ünïcødé-日本語.txt";

export function makeFixtureTree(root: string): void {
  mkdirSync(root, { recursive: true });
  const p = (...parts: string[]) => join(root, ...parts);
  mkdirSync(p("etc"));
  writeFileSync(p("etc", "hosts"), "127.0.0.1 localhost\n");
  writeFileSync(p("etc", "empty"), "");
  writeFileSync(p("etc", "shadow"), "root:*:1::::::\n", { mode: 0o640 });
  chmodSync(p("etc", "shadow"), 0o640);
  mkdirSync(p("usr", "bin"), { recursive: true });
  // Larger than one 1 MiB output chunk and not block aligned: exercises chunk boundaries.
  // Repeated random blocks: compressors (xz!) stay fast while contents still differ everywhere.
  const block = randomBytes(64 * 1024);
  writeFileSync(p("usr", "bin", "big"), Buffer.concat([...Array(24).fill(block), randomBytes(123)]));
  writeFileSync(p("usr", "bin", "suid"), "#!/bin/sh\n");
  chmodSync(p("usr", "bin", "suid"), 0o4755);
  writeFileSync(p("usr", "bin", "ping"), "not really ping\n");
  chmodSync(p("usr", "bin", "ping"), 0o755);
  execFileSync("setcap", ["cap_net_raw+ep", p("usr", "bin", "ping")]);
  execFileSync("setfattr", ["-n", "user.binary", "-v", "0x00ff0a3d5c", p("usr", "bin", "ping")]);
  // Hard links: three names for one inode.
  writeFileSync(p("usr", "bin", "gzip"), "gzip\n");
  linkSync(p("usr", "bin", "gzip"), p("usr", "bin", "gunzip"));
  linkSync(p("usr", "bin", "gzip"), p("usr", "bin", "zcat"));
  symlinkSync("gzip", p("usr", "bin", "link-to-gzip"));
  symlinkSync(`/${"t".repeat(150)}/target`, p("usr", "bin", "long-link"));
  symlinkSync("missing", p("usr", "bin", "dangling"));
  // Ownership, including ids above 262143 (tar-stream's limit) and 2^21 (ustar's octal limit).
  writeFileSync(p("etc", "owned"), "x");
  lchownSync(p("etc", "owned"), 1000, 1000);
  writeFileSync(p("etc", "big-ids"), "y");
  lchownSync(p("etc", "big-ids"), 300_000, 400_000);
  writeFileSync(p("etc", "huge-ids"), "z");
  lchownSync(p("etc", "huge-ids"), 3_000_000, 2_100_000);
  lchownSync(p("usr", "bin", "link-to-gzip"), 5, 6);
  // Devices, a fifo, a socket (skipped with a warning).
  mkdirSync(p("dev"));
  execFileSync("mknod", ["-m", "666", p("dev", "null"), "c", "1", "3"]);
  execFileSync("mknod", ["-m", "660", p("dev", "loop0"), "b", "7", "0"]);
  execFileSync("mknod", ["-m", "600", p("dev", "big-minor"), "c", "240", "300000"]);
  execFileSync("mkfifo", ["-m", "644", p("dev", "initctl")]);
  const sock = spawnSync(process.execPath, [
    "-e",
    "require('net').createServer().listen(process.argv[1], () => process.exit(0))",
    p("dev", "log"),
  ]);
  if (sock.status !== 0) throw new Error(`could not make a socket: ${sock.stderr}`);
  // Long and UTF-8 names.
  mkdirSync(p(DEEP_DIR), { recursive: true });
  writeFileSync(p(DEEP_DIR, LONG_NAME), "deep\n");
  writeFileSync(p(LONG_NAME), "long\n");
  writeFileSync(p(UTF8_NAME), "utf8\n");
  // ACLs: an access ACL on a file, a default ACL on a directory.
  writeFileSync(p("etc", "acl-file"), "acl\n");
  execFileSync("setfacl", ["-m", "u:1234:rwx,g:55:r", p("etc", "acl-file")]);
  mkdirSync(p("srv"));
  execFileSync("setfacl", ["-d", "-m", "g:55:r-x", p("srv")]);
  // Sticky world-writable directory.
  mkdirSync(p("tmp"));
  chmodSync(p("tmp"), 0o1777);
  // Times: a fraction of a second, one in the future of SOURCE_DATE_EPOCH, one before 1970 is not
  // portable to every filesystem, so not here.
  utimesSync(p("etc", "hosts"), 1_600_000_000, 1_600_000_000.75);
  utimesSync(p("usr", "bin", "big"), 1_650_000_000, 2_000_000_000);
  lutimesSync(p("usr", "bin", "link-to-gzip"), 1_500_000_000, 1_500_000_000);
  setDirTimes(root, 1_690_000_000);
}

/** Directory mtimes change while a tree is filled; set them last, deepest first. */
function setDirTimes(dir: string, mtime: number): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) setDirTimes(join(dir, e.name), mtime);
  }
  utimesSync(dir, mtime, mtime);
}

export interface NodeInfo {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  size?: number;
  sha256?: string;
  target?: string;
  rdev?: number;
  /** First path (in sorted order) of the hardlink group. */
  linkGroup?: string;
  xattrs?: Record<string, string>;
}

/** Describes a tree for comparison: path -> metadata, contents digest, link target, xattrs (hex). */
export function snapshot(root: string, options: { skipSockets?: boolean } = {}): Map<string, NodeInfo> {
  const out = new Map<string, NodeInfo>();
  const groups = new Map<string, string>();
  const xattrs = parseGetfattr(
    execFileSync("getfattr", ["-R", "-d", "-h", "-P", "-m", "-", "-e", "base64", "--absolute-names", root], {
      encoding: "latin1",
      env: { ...process.env, LC_ALL: "C" },
    }),
  );
  const visit = (rel: string) => {
    const abs = rel === "." ? root : join(root, rel);
    const st = lstatSync(abs, { bigint: true });
    const type = st.isFile()
      ? "file"
      : st.isDirectory()
        ? "dir"
        : st.isSymbolicLink()
          ? "symlink"
          : st.isCharacterDevice()
            ? "chardev"
            : st.isBlockDevice()
              ? "blockdev"
              : st.isFIFO()
                ? "fifo"
                : "socket";
    if (type === "socket" && options.skipSockets) return;
    const info: NodeInfo = {
      type,
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      mtime: Number(st.mtimeNs / 1_000_000_000n),
    };
    if (type === "file") {
      info.size = Number(st.size);
      info.sha256 = createHash("sha256").update(readFileSync(abs)).digest("hex");
    }
    if (type === "symlink") info.target = readlinkSync(abs);
    if (type === "chardev" || type === "blockdev") info.rdev = Number(st.rdev);
    if (type !== "dir" && st.nlink > 1n) {
      const key = `${st.dev}:${st.ino}`;
      if (!groups.has(key)) groups.set(key, rel);
      info.linkGroup = groups.get(key);
    }
    const attrs = xattrs.get(Buffer.from(abs).toString("latin1"));
    if (attrs) info.xattrs = Object.fromEntries(attrs.map(([k, v]) => [k, v.toString("hex")]));
    out.set(rel, info);
    if (type === "dir") {
      const names = readdirSync(abs).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
      for (const name of names) visit(rel === "." ? name : join(rel, name));
    }
  };
  visit(".");
  return out;
}
