import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** One apt source as the host declares it (deb822 stanza or one-line entry). */
export interface AptSource {
  types: string[];
  uris: string[];
  suites: string[];
  components: string[];
  /** File it came from, for messages. */
  file: string;
}

/** Parses a deb822 `.sources` file (stanzas of `Key: value`, continuation lines indented). */
export function parseDeb822Sources(text: string, file: string): AptSource[] {
  const out: AptSource[] = [];
  for (const stanza of text.split(/\n[ \t]*\n/)) {
    const fields = new Map<string, string>();
    let last: string | undefined;
    for (const raw of stanza.split("\n")) {
      if (raw.startsWith("#")) continue;
      if (/^[ \t]/.test(raw) && last) {
        fields.set(last, `${fields.get(last)} ${raw.trim()}`);
        continue;
      }
      const m = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(raw);
      if (m) {
        last = m[1]!.toLowerCase();
        fields.set(last, m[2]!.trim());
      }
    }
    if (!fields.has("uris")) continue;
    if ((fields.get("enabled") ?? "yes").toLowerCase() === "no") continue;
    const list = (key: string) => (fields.get(key) ?? "").split(/\s+/).filter(Boolean);
    out.push({
      types: list("types"),
      uris: list("uris"),
      suites: list("suites"),
      components: list("components"),
      file,
    });
  }
  return out;
}

/** Parses one-line `sources.list` syntax: `deb [options] URI SUITE [COMPONENT...]`. */
export function parseOneLineSources(text: string, file: string): AptSource[] {
  const out: AptSource[] = [];
  for (const raw of text.split("\n")) {
    const line = raw
      .replace(/#.*$/, "")
      .replace(/\[[^\]]*\]/, " ")
      .trim();
    const parts = line.split(/\s+/);
    if (parts.length < 3 || (parts[0] !== "deb" && parts[0] !== "deb-src")) continue;
    out.push({
      types: [parts[0]!],
      uris: [parts[1]!],
      suites: [parts[2]!],
      components: parts.slice(3),
      file,
    });
  }
  return out;
}

/** Every source the host's apt would use: sources.list, then sources.list.d/*.list and *.sources. */
export function readHostAptSources(aptDir = "/etc/apt"): AptSource[] {
  const out: AptSource[] = [];
  const read = (path: string): string | undefined => {
    try {
      return readFileSync(path, "utf8");
    } catch {
      return undefined;
    }
  };
  const main = read(join(aptDir, "sources.list"));
  if (main) out.push(...parseOneLineSources(main, join(aptDir, "sources.list")));
  let names: string[] = [];
  try {
    names = readdirSync(join(aptDir, "sources.list.d")).sort();
  } catch {
    // no sources.list.d: fine
  }
  for (const name of names) {
    const path = join(aptDir, "sources.list.d", name);
    const text = name.endsWith(".sources") || name.endsWith(".list") ? read(path) : undefined;
    if (text === undefined) continue;
    out.push(
      ...(name.endsWith(".sources") ? parseDeb822Sources(text, path) : parseOneLineSources(text, path)),
    );
  }
  return out;
}

/** The first binary (`deb`) source over http(s) or file with a suite `wanted` accepts: its URI. */
function firstDebUri(aptDir: string, wanted: (suite: string) => boolean): string | undefined {
  for (const source of readHostAptSources(aptDir)) {
    if (!source.types.includes("deb") || !source.suites.some(wanted)) continue;
    const uri = source.uris.find((u) => /^(https?|file):\/\//.test(u));
    if (uri) return uri.replace(/\/+$/, "");
  }
  return undefined;
}

/**
 * The host's main Debian archive: the first binary (`deb`) source over http(s) or file with a
 * plain suite (not `-security`, `-updates` or `-backports`, which live in other archives or
 * are overlays).
 */
export function hostDebianMirror(aptDir = "/etc/apt"): string | undefined {
  return firstDebUri(
    aptDir,
    (s) => !/-(security|updates|backports|proposed-updates)$/.test(s) && !s.includes("/"),
  );
}

/** The host's Debian security archive: the first such source with a `<suite>-security` suite. */
export function hostDebianSecurityMirror(aptDir = "/etc/apt"): string | undefined {
  return firstDebUri(aptDir, (s) => s.endsWith("-security"));
}
