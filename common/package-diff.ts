import type { Manifest } from "./manifest.js";

/**
 * What changed between two versions of a template, from their manifests' package lists
 * (`templar diff`, the version page): packages added, removed, and those whose version moved,
 * keyed by name and architecture (multi-arch systems list one name per arch).
 */
export interface PackageChange {
  name: string;
  arch: string;
  from: string;
  to: string;
  /** "upgraded" when `to` sorts after `from` (Debian's version order), else "downgraded". */
  kind: "upgraded" | "downgraded";
}

export interface PackageDiff {
  added: { name: string; arch: string; version: string }[];
  removed: { name: string; arch: string; version: string }[];
  changed: PackageChange[];
  unchanged: number;
}

export function diffPackages(a: Pick<Manifest, "packages">, b: Pick<Manifest, "packages">): PackageDiff {
  const key = (p: { name: string; arch: string }) => `${p.name}\u0000${p.arch}`;
  const before = new Map((a.packages ?? []).map((p) => [key(p), p]));
  const after = new Map((b.packages ?? []).map((p) => [key(p), p]));
  const out: PackageDiff = { added: [], removed: [], changed: [], unchanged: 0 };
  for (const [k, p] of after) {
    const old = before.get(k);
    if (!old) out.added.push({ name: p.name, arch: p.arch, version: p.version });
    else if (old.version === p.version) out.unchanged++;
    else
      out.changed.push({
        name: p.name,
        arch: p.arch,
        from: old.version,
        to: p.version,
        kind: compareVersions(p.version, old.version) >= 0 ? "upgraded" : "downgraded",
      });
  }
  for (const [k, p] of before)
    if (!after.has(k)) out.removed.push({ name: p.name, arch: p.arch, version: p.version });
  const byName = (x: { name: string; arch: string }, y: { name: string; arch: string }) =>
    x.name === y.name ? (x.arch < y.arch ? -1 : 1) : x.name < y.name ? -1 : 1;
  out.added.sort(byName);
  out.removed.sort(byName);
  out.changed.sort(byName);
  return out;
}

/**
 * Debian's version order (deb-version(7)): `[epoch:]upstream[-revision]`, compared part by
 * part, where non-digit runs compare with letters before non-letters and `~` before anything
 * (even the end), and digit runs compare as numbers. RPM's order agrees on the usual versions.
 */
export function compareVersions(a: string, b: string): number {
  const split = (v: string) => {
    const colon = v.indexOf(":");
    const epoch = colon > 0 && /^\d+$/.test(v.slice(0, colon)) ? Number(v.slice(0, colon)) : 0;
    const rest = colon > 0 ? v.slice(colon + 1) : v;
    const dash = rest.lastIndexOf("-");
    return {
      epoch,
      upstream: dash >= 0 ? rest.slice(0, dash) : rest,
      revision: dash >= 0 ? rest.slice(dash + 1) : "",
    };
  };
  const x = split(a);
  const y = split(b);
  if (x.epoch !== y.epoch) return x.epoch < y.epoch ? -1 : 1;
  return compareParts(x.upstream, y.upstream) || compareParts(x.revision, y.revision);
}

function order(c: string | undefined): number {
  if (c === undefined) return 0;
  if (c === "~") return -1;
  if (/[A-Za-z]/.test(c)) return c.charCodeAt(0);
  return c.charCodeAt(0) + 256;
}

function compareParts(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    // Non-digit prefix.
    while ((i < a.length && !/\d/.test(a[i]!)) || (j < b.length && !/\d/.test(b[j]!))) {
      const ca = i < a.length && !/\d/.test(a[i]!) ? a[i] : undefined;
      const cb = j < b.length && !/\d/.test(b[j]!) ? b[j] : undefined;
      const d = order(ca) - order(cb);
      if (d !== 0) return d < 0 ? -1 : 1;
      if (ca !== undefined) i++;
      if (cb !== undefined) j++;
    }
    let na = "";
    let nb = "";
    while (i < a.length && /\d/.test(a[i]!)) na += a[i++];
    while (j < b.length && /\d/.test(b[j]!)) nb += b[j++];
    const va = BigInt(na || "0");
    const vb = BigInt(nb || "0");
    if (va !== vb) return va < vb ? -1 : 1;
  }
  return 0;
}
