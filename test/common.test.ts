import { describe, expect, it } from "vitest";
import { UserError } from "../common/errors.js";
import { parseManifest } from "../common/manifest.js";
import { serializeManifest } from "../common/manifest-files.js";
import { assertTemplateName, isTag, isVersion, templateNameProblem } from "../common/names.js";

const hex = "a".repeat(64);
const manifest = {
  schemaVersion: 1,
  name: "debian-13-x86_64-minimal",
  version: "13.2.0",
  created: "2026-11-25T00:00:00Z",
  rootfs: { tarSha256: hex, tarSize: 10240, entries: 3 },
  artifacts: [{ format: "tar.zst", digest: `sha256:${hex}`, size: 100 }],
};

describe("template names", () => {
  it("accepts OpenVZ-style names and refuses the rest", () => {
    expect(templateNameProblem("debian-13-x86_64-minimal")).toBeNull();
    expect(templateNameProblem("centos-10-x86_64")).toBeNull();
    for (const bad of ["Debian-13", "a/b", "..", "a..b", "-lead", "", "x".repeat(129), "a\0b", "a b"]) {
      expect(templateNameProblem(bad), bad).not.toBeNull();
    }
    expect(() => assertTemplateName("Bad")).toThrow(UserError);
  });

  it("uses strict semver and tag rules", () => {
    expect(isVersion("13.2.0")).toBe(true);
    expect(isVersion("1.2.0-rc.1")).toBe(true);
    expect(isVersion("v1.2.3")).toBe(false);
    expect(isVersion("1.2")).toBe(false);
    expect(isTag("latest")).toBe(true);
    expect(isTag("1abc")).toBe(false);
  });
});

describe("manifest", () => {
  it("round-trips and keeps unknown fields", () => {
    const parsed = parseManifest(JSON.stringify({ ...manifest, extra: { kept: true } }));
    expect(parsed.name).toBe(manifest.name);
    expect((parsed as Record<string, unknown>).extra).toEqual({ kept: true });
    expect(parseManifest(serializeManifest(parsed))).toEqual(parsed);
  });

  it("names the field that is wrong", () => {
    const bad = { ...manifest, artifacts: [{ format: "tar.bz3", digest: "sha256:x", size: 1 }] };
    expect(() => parseManifest(JSON.stringify(bad), "m.json")).toThrow(/m\.json: field artifacts\.0\.format/);
    expect(() => parseManifest("{", "m.json")).toThrow(/m\.json: not valid JSON/);
    expect(() => parseManifest(JSON.stringify({ ...manifest, version: "1.2" }))).toThrow(/field version/);
  });

  it("holds the fields that become file names to strict patterns", () => {
    const bad: [string, string][] = [
      ["arch", "x/../../../escaped"],
      ["arch", "x86_64; reboot"],
      ["arch", "amd64$(id)"],
      ["arch", "X86_64"],
      ["arch", ".hidden"],
      ["distro", "debian/../x"],
      ["distro", ""],
      ["release", ".."],
      ["release", "13 trixie"],
      ["flavour", ".minimal"],
      ["flavour", "a'b"],
      ["version", `1.0.0-${"a".repeat(60)}`],
    ];
    for (const [field, value] of bad) {
      expect(
        () => parseManifest(JSON.stringify({ ...manifest, [field]: value })),
        `${field}=${value}`,
      ).toThrow(new RegExp(`field ${field}`));
    }
    const good = { distro: "debian", release: "13", arch: "x86_64", flavour: "minimal" };
    expect(parseManifest(JSON.stringify({ ...manifest, ...good }))).toMatchObject(good);
    expect(parseManifest(JSON.stringify({ ...manifest, release: "24.04", arch: "ppc64le" })).arch).toBe(
      "ppc64le",
    );
  });

  it("refuses invalid UTF-8, deep nesting and two artifacts of one format", () => {
    const bytes = Buffer.from(JSON.stringify({ ...manifest, description: "caf\u00e9" }));
    expect(parseManifest(bytes).description).toBe("café");
    // "café" with the é's second byte broken: a lenient decode would read it as "caf\ufffd(".
    const invalid = Buffer.from(bytes);
    invalid[invalid.indexOf(Buffer.from([0xc3, 0xa9])) + 1] = 0x28;
    expect(() => parseManifest(invalid, "m.json")).toThrow(/m\.json: not valid UTF-8/);

    const nest = (depth: number) => `${"[".repeat(depth)}${"]".repeat(depth)}`;
    const nested = (depth: number) => JSON.stringify({ ...manifest, extra: "X" }).replace('"X"', nest(depth));
    expect(() => parseManifest(nested(31))).not.toThrow(); // 32 levels with the manifest itself
    expect(() => parseManifest(nested(32), "m.json")).toThrow(/m\.json: JSON nested deeper than 32 levels/);
    expect(() => parseManifest(nested(100_000))).toThrow(/nested deeper/);
    // Brackets inside strings do not count.
    expect(() =>
      parseManifest(JSON.stringify({ ...manifest, description: "[[[[".repeat(100) })),
    ).not.toThrow();

    const artifact = manifest.artifacts[0]!;
    const twice = { ...manifest, artifacts: [artifact, { ...artifact, digest: `sha256:${"b".repeat(64)}` }] };
    expect(() => parseManifest(JSON.stringify(twice))).toThrow(
      /field artifacts\.1\.format: a second tar\.zst artifact/,
    );
  });
});
