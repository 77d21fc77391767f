import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  defaultPockets,
  releaseFileOf,
  securityMirror,
  sourceLines,
  suiteSources,
} from "../../builder/sources/debian-pockets.js";

// The security archive is found without naming any host: the one configured
// (TEMPLAR_DEBIAN_SECURITY_MIRROR), the build host's apt sources, or the main mirror's layout.
// Real builds against the archive: debian.test.ts.
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "templar-pockets-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function aptDir(name: string, sources: string): Promise<string> {
  const path = join(dir, name);
  await mkdir(join(path, "sources.list.d"), { recursive: true });
  await writeFile(join(path, "sources.list.d", "debian.sources"), sources);
  return path;
}

describe("Debian update pockets", () => {
  it("gives stable and testing suites both pockets, unstable none", () => {
    expect(defaultPockets("trixie")).toEqual(["updates", "security"]);
    expect(defaultPockets("forky")).toEqual(["updates", "security"]);
    expect(defaultPockets("sid")).toEqual([]);
    expect(defaultPockets("unstable")).toEqual([]);
  });

  it("takes the configured security mirror first, then the host's apt sources, then the main mirror's sibling", async () => {
    const withSecurity = await aptDir(
      "with-security",
      "Types: deb\nURIs: http://mirror.test/debian\nSuites: trixie trixie-updates\nComponents: main\n\n" +
        "Types: deb\nURIs: http://security.test/debian-security/\nSuites: trixie-security\nComponents: main\n",
    );
    const without = await aptDir(
      "without-security",
      "Types: deb\nURIs: http://mirror.test/debian\nSuites: trixie\nComponents: main\n",
    );
    expect(securityMirror("http://mirror.test/debian", withSecurity, "r.yaml:3:3")).toBe(
      "http://security.test/debian-security",
    );
    expect(securityMirror("http://mirror.test/debian/", without, "r.yaml:3:3")).toBe(
      "http://mirror.test/debian-security",
    );
    expect(
      securityMirror("http://mirror.test/debian", withSecurity, "r.yaml:3:3", "http://env.test/sec/"),
    ).toBe("http://env.test/sec");
  });

  it("says where and what to do when no security mirror can be found", async () => {
    const without = await aptDir("none", "Types: deb\nURIs: http://mirror.test/pool\nSuites: trixie\n");
    expect(() => securityMirror("http://mirror.test/pool", without, "recipes/x.yaml:9:3")).toThrow(
      /^recipes\/x\.yaml:9:3: source: no Debian security mirror found .*TEMPLAR_DEBIAN_SECURITY_MIRROR.*pockets: \[updates\]/,
    );
    expect(() =>
      securityMirror(
        "http://mirror.test/pool",
        without,
        "recipes/x.yaml:9:3",
        "ftp://old.test/debian-security",
      ),
    ).toThrow(/security mirror "ftp:\/\/old\.test\/debian-security" is not an http/);
  });

  it("lists the suite, then -updates on the main mirror, then -security on the security mirror", () => {
    let asked = 0;
    const security = () => {
      asked++;
      return "http://sec.test/debian-security";
    };
    const all = suiteSources("http://m.test/debian", "trixie", ["updates", "security"], security);
    expect(sourceLines(all, ["main", "contrib"])).toEqual([
      "deb http://m.test/debian trixie main contrib",
      "deb http://m.test/debian trixie-updates main contrib",
      "deb http://sec.test/debian-security trixie-security main contrib",
    ]);
    // Without the security pocket, no security mirror is needed (or looked for).
    expect(suiteSources("http://m.test/debian", "sid", [], security)).toEqual([
      { mirror: "http://m.test/debian", suite: "sid" },
    ]);
    expect(asked).toBe(1);
  });

  it("finds the Release file apt kept for each suite, and not a sibling suite's", () => {
    const files = [
      "/l/m.test_debian_dists_trixie-updates_InRelease",
      "/l/m.test_debian_dists_trixie_InRelease",
      "/l/sec.test_debian-security_dists_trixie-security_Release",
    ];
    expect(releaseFileOf({ mirror: "http://m.test/debian", suite: "trixie" }, files)).toEqual({
      file: "/l/m.test_debian_dists_trixie_InRelease",
      uri: "http://m.test/debian/dists/trixie/InRelease",
    });
    expect(
      releaseFileOf({ mirror: "http://sec.test/debian-security", suite: "trixie-security" }, files),
    ).toEqual({
      file: "/l/sec.test_debian-security_dists_trixie-security_Release",
      uri: "http://sec.test/debian-security/dists/trixie-security/Release",
    });
    expect(releaseFileOf({ mirror: "http://m.test/debian", suite: "forky" }, files)).toBeUndefined();
  });
});
