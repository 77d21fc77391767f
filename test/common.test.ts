import { describe, expect, it } from "vitest";
import { UserError } from "../common/errors.js";
import { parseManifest, serializeManifest } from "../common/manifest.js";
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
});
