/**
 * Reads aplinfo.dat by the rules pveam applies on `pveam update` (PVE/APLInfo.pm), so
 * tests can check our index the way a Proxmox host will: paragraph records, Description swallows
 * the rest of its record, a bad Version or Type or an unparsable line rejects the whole index,
 * and a record lacking package, type, os, version or infopage is "incomplete".
 */
export interface PveamRecord {
  fields: Record<string, string>;
  headline: string;
  description: string;
  template: string;
  location: string;
}

const TEMPLATE_EXTENSION = /\.tar(\.(gz|xz|zst|bz2))?$/;

export function parseAplinfoLikePveam(text: string, indexUrl: string): PveamRecord[] {
  const source = indexUrl.replace(/\/[^/]*$/, "");
  const records: PveamRecord[] = [];
  for (let rec of text.split(/\n{2,}/)) {
    rec = rec.replace(/\n+$/, "");
    if (rec === "") continue;
    const res: Record<string, string> = {};
    let headline = "";
    let description = "";
    while (rec) {
      const desc = /^Description:[ \t]*([^\n]*)((?:\n\s+[\s\S]*)*)$/i.exec(rec);
      const version = /^Version:\s*(.*\S)\s*\n/i.exec(rec);
      const type = /^Type:\s*(.*\S)\s*\n/i.exec(rec);
      const field = /^([^:\n]+):\s*(.*\S)\s*\n/.exec(rec);
      if (desc) {
        headline = desc[1]!;
        description = (desc[2] ?? "").replace(/\n\s+/g, " ").trim();
        rec = "";
      } else if (version) {
        if (!/^(\d[a-zA-Z0-9.+\-:~]*)(-(\d+))?$/.test(version[1]!)) {
          throw new Error(`unable to parse appliance record: version = '${version[1]}'`);
        }
        res.version = version[1]!;
        rec = rec.slice(version[0].length);
      } else if (type) {
        if (!/^(openvz|lxc)$/.test(type[1]!))
          throw new Error(`unable to parse appliance record: unknown type '${type[1]}'`);
        res.type = type[1]!;
        rec = rec.slice(type[0].length);
      } else if (field) {
        res[field[1]!.toLowerCase()] = field[2]!;
        rec = rec.slice(field[0].length);
      } else {
        throw new Error(`unable to parse appliance record: ${rec}`);
      }
    }
    if (!(res.package && res.type && res.os && res.version && res.infopage))
      throw new Error("found incomplete appliance records");
    if (!res.location) throw new Error("templar always writes Location");
    const template = res.location.replace(/^.*\//, "");
    if (!TEMPLATE_EXTENSION.test(template))
      throw new Error(`template file name ${template} has no template extension`);
    const location = /^[a-zA-Z]+:\/\//.test(res.location) ? res.location : `${source}/${res.location}`;
    records.push({ fields: res, headline, description, template, location });
  }
  return records;
}
