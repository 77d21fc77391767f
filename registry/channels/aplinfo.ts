import type { Manifest } from "../../common/manifest.js";
import { proxmoxArch } from "../../common/manifest-files.js";

/**
 * Proxmox's appliance index (`aplinfo.dat`), as pveam reads it (PVE/APLInfo.pm; docs/http-api.md "Host channels"):
 * Debian-control stanzas separated by blank lines; Package, Type, OS, Version and Infopage are
 * required; Version must match PROXMOX_VERSION; Description comes LAST in a stanza because
 * pveam's parser takes everything after "Description:" as the description; one bad record
 * makes `pveam update` reject the whole index, so every value is sanitised to one line.
 */
export const PROXMOX_VERSION = /^\d[a-zA-Z0-9.+\-:~]*(-\d+)?$/;

export interface AplinfoRecord {
  manifest: Manifest;
  /** Location relative to the index URL; its basename is the template file name pveam stores. */
  location: string;
  md5: string;
  sha512: string;
  /** Page for people about this template. */
  infopage: string;
  maintainer: string;
}

/**
 * The OS field: pct and pveam show it; Proxmox writes e.g. "debian-12". Without distro/release
 * in the manifest they come from the name when it follows `<distro>-<release>-...`.
 */
export function proxmoxOs(manifest: Manifest): string {
  const [first, second] = manifest.name.split("-");
  const distro = manifest.distro ?? first!;
  const release =
    manifest.release ?? (manifest.distro === undefined && second && /^\d/.test(second) ? second : undefined);
  return release ? `${distro}-${release}` : distro;
}

function oneLine(value: string): string {
  return value
    .replace(/[\r\n]+/g, " ")
    .replace(/\s+/g, " ")
    .trim();
}

export function renderAplinfoRecord(record: AplinfoRecord): string {
  const m = record.manifest;
  if (!PROXMOX_VERSION.test(m.version)) {
    throw new Error(`version ${m.version} of ${m.name} cannot be expressed in aplinfo.dat`);
  }
  const headline = oneLine(m.description ?? `${m.name} ${m.version}`);
  const packages = m.packages?.length ? ` ${m.packages.length} packages.` : "";
  const long = oneLine(`templar template ${m.name} version ${m.version}, built ${m.created}.${packages}`);
  const fields: [string, string][] = [
    ["Package", m.name],
    ["Version", m.version],
    ["Type", "lxc"],
    ["OS", proxmoxOs(m)],
    ["Section", "system"],
    ["Maintainer", oneLine(record.maintainer)],
    ["Architecture", proxmoxArch(m)],
    ["Location", record.location],
    ["md5sum", record.md5],
    ["sha512sum", record.sha512],
    ["Infopage", record.infopage],
  ];
  const lines = fields.map(([k, v]) => `${k}: ${oneLine(v)}`);
  lines.push(`Description: ${headline}`, ` ${long}`);
  return `${lines.join("\n")}\n`;
}

/** The whole index: records sorted by package name so the bytes (and their signature) are stable. */
export function renderAplinfo(records: AplinfoRecord[]): string {
  const sorted = [...records].sort((a, b) =>
    a.manifest.name < b.manifest.name ? -1 : a.manifest.name > b.manifest.name ? 1 : 0,
  );
  return sorted.map(renderAplinfoRecord).join("\n");
}
