import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { describe, expect, it } from "vitest";

/**
 * The structure docs/architecture.md describes, checked by reading the files: the repository
 * carries its own contracts, client and server stay apart, one module knows the storage keys,
 * one module reads the environment, files stay small. Each check lists the offending files.
 */
const ROOT = resolve(".");
/** Build output, dependencies and what .gitignore lists as local state. */
const SKIP_DIRS = new Set(["node_modules", "dist", ".git", "data", "out", ".cache", ".scratch"]);
/** What the product is made of (not tests: they build keys and read the environment on purpose). */
const SOURCE_DIRS = ["builder", "registry", "client", "common", "cli"];

function walk(dir: string, found: string[] = []): string[] {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (!SKIP_DIRS.has(entry.name)) walk(path, found);
    } else if (entry.isFile()) {
      found.push(relative(ROOT, path).split(sep).join("/"));
    }
  }
  return found;
}

const allFiles = walk(ROOT).sort();
const texts = new Map<string, string>();
for (const file of allFiles) {
  if (statSync(file).size > 4 << 20) continue;
  const text = readFileSync(file, "utf8");
  if (!text.includes("\0")) texts.set(file, text);
}
const tsFiles = (dirs: string[]) =>
  [...texts.keys()].filter((f) => f.endsWith(".ts") && dirs.some((d) => f.startsWith(`${d}/`)));

/** Lines of `text` matching `pattern`, as "file:line: text". */
function hits(file: string, pattern: RegExp): string[] {
  const lines = texts.get(file)!.split("\n");
  return lines.flatMap((line, i) => (pattern.test(line) ? [`${file}:${i + 1}: ${line.trim()}`] : []));
}

/** Every module a TypeScript file imports, as a repository path ("registry/store/store.ts"), or the bare name. */
function importsOf(file: string): string[] {
  const text = texts.get(file)!;
  const specifiers = [
    ...text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|\brequire\s*\(\s*|^\s*import\s+)["']([^"']+)["']/gm),
  ].map((m) => m[1]!);
  return specifiers.map((s) =>
    s.startsWith(".")
      ? relative(ROOT, resolve(dirname(file), s))
          .split(sep)
          .join("/")
          .replace(/\.js$/, ".ts")
      : s,
  );
}

describe("the repository", () => {
  it("cites no file outside itself: contracts are in docs/", () => {
    // Spelled in pieces, so that this file does not cite them either.
    const names = [
      ["..", "/sha", "red"],
      ["DES", "IGN", ".md"],
      ["FAC", "TS", ".md"],
    ].map((parts) => parts.join(""));
    const outside = new RegExp(names.map((n) => n.replace(/\./g, "\\.")).join("|"));
    const offenders = [...texts.keys()].flatMap((f) => hits(f, outside));
    expect(offenders).toEqual([]);
  });

  it("cites only docs/ pages that exist", () => {
    const cited = new Set<string>();
    for (const text of texts.values()) {
      for (const m of text.matchAll(/\bdocs\/([a-z0-9-]+\.md)/g)) cited.add(`docs/${m[1]}`);
    }
    expect(cited.size).toBeGreaterThan(0);
    expect([...cited].filter((page) => !texts.has(page))).toEqual([]);
  });

  it("README and docs/ name only files and folders that exist", () => {
    const pages = [...texts.keys()].filter((f) => /^(README\.md|docs\/.*\.md|recipes\/.*\.md)$/.test(f));
    expect(pages).toContain("docs/architecture.md");
    const missing = new Set<string>();
    for (const page of pages) {
      for (const m of texts
        .get(page)!
        .matchAll(/\b(?:builder|registry|client|common|cli|test|bench|recipes|docs|scripts)\/[\w./-]*\w/g)) {
        const path = m[0];
        if (/\/[A-Z]+\.\w+$/.test(path)) continue; // a placeholder: recipes/fedora/N.yaml
        const exists = (p: string) => texts.has(p) || allFiles.some((f) => f.startsWith(`${p}/`));
        if (!exists(path) && !exists(path.replace(/\.js$/, ".ts"))) missing.add(`${page}: ${path}`);
      }
    }
    expect([...missing]).toEqual([]);
  });

  it("names no package registry's host, in code, docs or examples", () => {
    // Debian and Ubuntu archives, and the language package registries; built from parts.
    const hosts = new RegExp(
      [
        "[a-z0-9-]+\\.(?:[a-z0-9-]+\\.)*(?:debian|ubuntu)\\.(?:org|com)",
        ["npmjs", "(?:org|com)"].join("\\."),
        ["yarnpkg", "com"].join("\\."),
        ["pypi", "org"].join("\\."),
        ["rubygems", "org"].join("\\."),
        ["crates", "io"].join("\\."),
        ["proxy", "golang", "org"].join("\\."),
      ].join("|"),
      "i",
    );
    const offenders = [...texts.keys()]
      .filter((f) => f !== "package-lock.json")
      .flatMap((f) => hits(f, hosts));
    expect(offenders).toEqual([]);
  });
});

describe("layers", () => {
  const importing = (dirs: string[], forbidden: string[]) =>
    tsFiles(dirs).flatMap((file) =>
      importsOf(file)
        .filter((target) => forbidden.some((d) => target.startsWith(`${d}/`)))
        .map((target) => `${file} imports ${target}`),
    );

  it("client/ imports nothing from registry/, and registry/ nothing from client/", () => {
    expect(tsFiles(["client"]).length).toBeGreaterThan(0);
    expect(importing(["client"], ["registry", "cli", "builder"])).toEqual([]);
    expect(importing(["registry"], ["client", "cli", "builder"])).toEqual([]);
  });

  it("common/ imports only common/; builder/ imports no registry/, client/ or cli/", () => {
    expect(importing(["common"], ["registry", "client", "cli", "builder"])).toEqual([]);
    expect(importing(["builder"], ["registry", "client", "cli"])).toEqual([]);
  });

  it("only registry/store/layout.ts spells storage keys", () => {
    // A string literal that starts like a key of the layout. URLs differ: they start with '/'
    // (/v1/blobs/sha256:..., /v1/uploads/..., /templates/...).
    const keyLiteral =
      /["'`](?:blobs\/sha256\/|templates\/|uploads\/|derived\/sha256\/|gc\/(?:pins|pending|runs)\b)/;
    const keyPart = /["'`][^"'`]*\/(?:versions|tags)\/\$\{/; // `templates/${name}/versions/${v}`
    // builder/ never reaches storage (it may not import registry/, checked above); its paths
    // inside tarballs, such as Incus's templates/hostname.tpl, only look like keys.
    const files = tsFiles([...SOURCE_DIRS, "bench"]).filter(
      (f) => f !== "registry/store/layout.ts" && !f.startsWith("builder/"),
    );
    expect(files.length).toBeGreaterThan(50);
    const offenders = files.flatMap((f) => [...hits(f, keyLiteral), ...hits(f, keyPart)]);
    expect(offenders).toEqual([]);
    // The check itself sees what it looks for.
    expect(hits("registry/store/layout.ts", keyLiteral).length).toBeGreaterThan(5);
  });

  it("only cli/settings.ts reads the environment, apart from a few reasons of its own", () => {
    const allowed: Record<string, string> = {
      "cli/settings.ts": "the one place settings come from the environment",
      "cli/templar.ts": "TEMPLAR_DEBUG, read while reporting an error that may have come from settings",
      "builder/exec.ts":
        "the environment handed to child processes (proxies, TMPDIR; host tools get the host's)",
      "common/compression/codecs.ts": "looks compressor programs up on PATH, as a shell would",
      "common/compression/filters.ts":
        "hands zstd --long the environment plus glibc's huge-page malloc tunable for its large buffers",
      "registry/storage/s3-client.ts":
        "silences the AWS SDK's Node-version warning, a switch the SDK reads from the environment",
    };
    const readsEnv = /\bprocess\s*(?:\.\s*env\b|\[\s*["'`]env["'`]\s*\])|\{\s*env\s*\}\s*=\s*process\b/;
    const readers = tsFiles(SOURCE_DIRS).filter((f) => hits(f, readsEnv).length > 0);
    expect(readers.filter((f) => !(f in allowed))).toEqual([]);
    // An allowance nobody needs any more goes too.
    expect(Object.keys(allowed).filter((f) => !readers.includes(f))).toEqual([]);
  });
});

describe("file size", () => {
  const SOFT = 400;
  const HARD = 450;
  const allowed: Record<string, string> = {
    "test/registry/routes.test.ts":
      "one test per route of registry/app.ts's table, side by side so that a route without a test stands out",
  };

  it(`no TypeScript file is over ${HARD} lines (files over ${SOFT} are reported)`, () => {
    const sizes = tsFiles([...SOURCE_DIRS, "bench", "test"]).map((f) => ({
      file: f,
      lines: texts.get(f)!.split("\n").length - 1,
    }));
    expect(sizes.length).toBeGreaterThan(100);
    const large = sizes.filter((s) => s.lines > SOFT);
    if (large.length)
      console.log(`over ${SOFT} lines: ${large.map((s) => `${s.file} (${s.lines})`).join(", ")}`);
    expect(
      large.filter((s) => s.lines > HARD && !(s.file in allowed)).map((s) => `${s.file}: ${s.lines}`),
    ).toEqual([]);
    expect(Object.keys(allowed).filter((f) => !large.some((s) => s.file === f && s.lines > HARD))).toEqual(
      [],
    );
  });
});
