import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import { UserError } from "../common/errors.js";
import { env } from "./settings.js";

/**
 * What a command needs from the machine, checked before any work starts (and listed by
 * `templar doctor`): programs, each with the Debian package that provides it, and root. A
 * missing requirement stops the command at once with every missing piece named; a missing
 * recommendation (a faster path exists with it) is only mentioned.
 */
export interface Requirement {
  /** Programs of which one suffices (mmdebstrap or debootstrap); empty for "root". */
  programs: string[];
  /** The Debian package(s) providing them, as `apt install` takes them. */
  package: string;
  /** Why the command needs it. */
  why: string;
  /** True: the command works without it (slower, or only some options need it). */
  optional?: boolean;
  root?: boolean;
  /** Needed only by recipes with this source method (build). */
  source?: string;
}

const ROOT = (why: string): Requirement => ({ programs: [], package: "", why, root: true });
const tool = (programs: string[], pkg: string, why: string, optional = false): Requirement => ({
  programs,
  package: pkg,
  why,
  ...(optional ? { optional } : {}),
});

const getfattr = tool(["getfattr"], "attr", "reads extended attributes and ACLs into the tar");
const zstd = tool(["zstd"], "zstd", "tar.zst at full speed (else a slower in-process encoder)", true);
const pigz = tool(["pigz"], "pigz", "parallel tar.gz (else gzip or in-process zlib)", true);
const gpg = tool(["gpg"], "gpg", "only for --sign-with gpg:KEYID", true);

export const REQUIREMENTS: Record<string, Requirement[]> = {
  pack: [getfattr, zstd, pigz, gpg],
  build: [
    ROOT("bootstrapping, chroot and mounts need root"),
    {
      ...tool(["mmdebstrap", "debootstrap"], "mmdebstrap", "bootstraps Debian templates from the archive"),
      source: "debootstrap",
    },
    { ...tool(["gpgv"], "gpgv", "checks the Debian archive's InRelease signature"), source: "debootstrap" },
    tool(["unshare"], "util-linux", "a private mount namespace for the chroot"),
    tool(["tar"], "tar", "extracts upstream root filesystems"),
    getfattr,
    zstd,
    pigz,
    gpg,
    tool(["systemd-nspawn"], "systemd-container", "only for --test (boot test)", true),
  ],
  test: [
    ROOT("the template boots in a privileged systemd-nspawn container"),
    tool(["systemd-nspawn"], "systemd-container", "boots the template"),
    tool(["nsenter", "unshare", "setpriv"], "util-linux", "namespaces for the container"),
    tool(["ip"], "iproute2", "the container's veth pair"),
    tool(["ping"], "iputils-ping", "the ping check"),
    tool(["tar"], "tar", "extracts the template"),
  ],
};

/** Whether `program` is an executable file in a $PATH directory (no process spawned). */
export function onPath(program: string): boolean {
  for (const dir of (env("PATH") ?? "").split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, program), constants.X_OK);
      return true;
    } catch {
      // not here
    }
  }
  return false;
}

export interface Finding {
  requirement: Requirement;
  /** The programs of the requirement that are missing (all of a one-of group when none is there). */
  missing: string[];
}

/** Every requirement of `command` this machine does not meet. */
export function findings(command: string, sources?: Set<string>): Finding[] {
  const out: Finding[] = [];
  for (const r of REQUIREMENTS[command] ?? []) {
    if (r.source && sources && !sources.has(r.source)) continue;
    if (r.root) {
      if (process.getuid?.() !== 0) out.push({ requirement: r, missing: [] });
      continue;
    }
    // One of the group suffices (mmdebstrap or debootstrap); util-linux's group needs all.
    const absent = r.programs.filter((p) => !onPath(p));
    const oneOf = r.programs.length > 1 && r.package === "mmdebstrap";
    if (oneOf ? absent.length === r.programs.length : absent.length > 0)
      out.push({ requirement: r, missing: absent });
  }
  return out;
}

/** One line for a finding: "getfattr not found (Debian: apt install attr): reads ...". */
export function describe(f: Finding): string {
  if (f.requirement.root) return `needs root: ${f.requirement.why} (run it as root, e.g. with sudo)`;
  const names = f.requirement.package === "mmdebstrap" ? "mmdebstrap (or debootstrap)" : f.missing.join(", ");
  return `${names} not found (Debian: apt install ${f.requirement.package}): ${f.requirement.why}`;
}

/**
 * Stops `command` before it starts when the machine lacks something it needs, naming every
 * missing piece at once. Optional ones are only mentioned (on stderr, unless `quiet`).
 */
export function preflight(command: string, options: { quiet?: boolean; sources?: Set<string> } = {}): void {
  const found = findings(command, options.sources);
  const needed = found.filter((f) => !f.requirement.optional);
  if (needed.length > 0) {
    throw new UserError(
      `${command}: this machine cannot run it yet (see 'templar doctor'):\n${needed.map((f) => `  - ${describe(f)}`).join("\n")}`,
    );
  }
  if (!options.quiet) {
    for (const f of found) process.stderr.write(`templar: note: ${describe(f)}\n`);
  }
}
