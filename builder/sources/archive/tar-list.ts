import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { UserError } from "../../../common/errors.js";
import { hostToolEnv } from "../../exec.js";

/**
 * The members of a tar file as GNU tar itself sees them (`tar -tv --quoting-style=c`). The
 * safety scan reads the listing of the very program that then extracts, so no difference
 * between two tar parsers (PAX, GNU long names, sparse files, base-256 numbers) can let a
 * member pass the scan under one name and be written under another.
 */
export type MemberType = "file" | "hardlink" | "symlink" | "directory" | "chardev" | "blockdev" | "fifo";

export interface Member {
  /** Raw name bytes as stored (latin1-decoded string: one char per byte). */
  name: string;
  type: MemberType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Link target for symlinks and hardlinks (raw bytes, latin1). */
  link?: string;
}

const TYPES: Record<string, MemberType> = {
  "-": "file",
  h: "hardlink",
  l: "symlink",
  d: "directory",
  c: "chardev",
  b: "blockdev",
  p: "fifo",
};

const QUOTED = String.raw`"((?:[^"\\]|\\.)*)"`;
const LINE = new RegExp(
  String.raw`^(\S)([-rwxsStT]{9})\s+(\d+)/(\d+)\s+(\d+|\d+,\d+)\s+.*?\s${QUOTED}(?: (->|link to) ${QUOTED})?$`,
);

const ESCAPES: Record<string, string> = {
  n: "\n",
  t: "\t",
  r: "\r",
  a: "\x07",
  b: "\b",
  f: "\f",
  v: "\v",
  "?": "?",
};

/** Undoes GNU tar's C quoting; octal escapes are raw bytes, so the result is latin1. */
export function unquoteC(text: string): string {
  return text.replace(/\\([0-7]{1,3}|.)/g, (_, esc: string) => {
    if (/^[0-7]/.test(esc)) return String.fromCharCode(Number.parseInt(esc, 8));
    return ESCAPES[esc] ?? esc;
  });
}

function modeBits(text: string): number {
  let mode = 0;
  const bit = (i: number, v: number) => (text[i] !== "-" && text[i] !== "S" && text[i] !== "T" ? v : 0);
  mode |= bit(0, 0o400) | bit(1, 0o200) | bit(2, 0o100) | bit(3, 0o40) | bit(4, 0o20) | bit(5, 0o10);
  mode |= bit(6, 0o4) | bit(7, 0o2) | bit(8, 0o1);
  if (text[2] === "s" || text[2] === "S") mode |= 0o4000;
  if (text[5] === "s" || text[5] === "S") mode |= 0o2000;
  if (text[8] === "t" || text[8] === "T") mode |= 0o1000;
  return mode;
}

export function parseListingLine(line: string, where: string): Member {
  const m = LINE.exec(line);
  const type = m ? TYPES[m[1]!] : undefined;
  if (!m || !type) throw new UserError(`${where}: unsupported tar member: ${line.slice(0, 200)}`);
  const member: Member = {
    name: unquoteC(m[6]!),
    type,
    mode: modeBits(m[2]!),
    uid: Number(m[3]),
    gid: Number(m[4]),
    size: m[5]!.includes(",") ? 0 : Number(m[5]),
  };
  if (m[8] !== undefined) member.link = unquoteC(m[8]);
  if ((type === "symlink" || type === "hardlink") && member.link === undefined) {
    throw new UserError(`${where}: link member without a target: ${line.slice(0, 200)}`);
  }
  return member;
}

/** Streams the members of an uncompressed tar file, in archive order. */
export async function* listTar(tarPath: string, where: string, signal?: AbortSignal): AsyncGenerator<Member> {
  // -P: show names exactly as stored (tar would otherwise strip a leading "/" before we see it).
  const child = spawn(
    "tar",
    ["-t", "-v", "-P", "--quoting-style=c", "--numeric-owner", "--full-time", "-f", tarPath],
    { env: hostToolEnv(), stdio: ["ignore", "pipe", "pipe"] },
  );
  const abort = () => child.kill("SIGTERM");
  signal?.addEventListener("abort", abort, { once: true });
  let stderr = "";
  child.stderr.on("data", (c: Buffer) => {
    stderr += c.toString("latin1");
  });
  const closed = new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", resolve);
  });
  try {
    for await (const line of createInterface({ input: child.stdout, crlfDelay: Number.POSITIVE_INFINITY })) {
      if (line !== "") yield parseListingLine(line, where);
    }
    const code = await closed;
    if (signal?.aborted) throw new UserError("interrupted", 130);
    if (code !== 0) {
      const last = stderr.trim().split("\n").pop() ?? `exit ${code}`;
      throw new UserError(`${where}: not a readable tar archive (${last})`);
    }
  } finally {
    signal?.removeEventListener("abort", abort);
    if (child.exitCode === null) child.kill("SIGTERM");
  }
}
