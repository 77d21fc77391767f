import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { distroRelease, nextVersion, versionsInDir } from "../../builder/version-auto.js";

const dir = mkdtempSync(join(tmpdir(), "templar-version-auto-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

/** A root with `files` (path -> content, or { link } for a symlink). */
function root(files: Record<string, string | { link: string }>): string {
  const r = join(dir, `root-${++n}`);
  mkdirSync(r);
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(r, path)), { recursive: true });
    if (typeof content === "string") writeFileSync(join(r, path), content);
    else symlinkSync(content.link, join(r, path));
  }
  return r;
}

describe("version: auto", () => {
  it("Debian: the point release of /etc/debian_version, then the next free serial", async () => {
    const found = await distroRelease("debian", root({ "etc/debian_version": "13.8\n" }), {});
    expect(found).toEqual({ release: "13.8", prefix: "13.8" });
    expect(nextVersion(found.prefix, [])).toBe("13.8.0");
    expect(nextVersion(found.prefix, ["13.8.0", "13.8.4", "13.7.9", "13.80.7", "13.8.2-rc.1"])).toBe(
      "13.8.5",
    );
    expect((await distroRelease("debian", root({ "etc/debian_version": "12.12\n" }), {})).prefix).toBe(
      "12.12",
    );
  });

  it("Debian: a link out of the root is resolved inside it, never to the host's file", async () => {
    const outside = join(dir, "host-debian_version");
    writeFileSync(outside, "99.9\n");
    for (const link of [outside, `../../../../../../..${outside}`]) {
      const r = root({ "etc/debian_version": { link } });
      await expect(distroRelease("debian", r, {})).rejects.toThrow(/debian_version in the root is missing/);
    }
    // A link inside the root is followed there.
    const inside = root({
      "usr/share/debian_version": "13.1\n",
      "etc/debian_version": { link: "/usr/share/debian_version" },
    });
    expect((await distroRelease("debian", inside, {})).release).toBe("13.1");
  });

  it("Debian testing/unstable has no point release: a clear error", async () => {
    await expect(distroRelease("debian", root({ "etc/debian_version": "trixie/sid\n" }), {})).rejects.toThrow(
      /"trixie\/sid", not a point release such as 13\.8/,
    );
  });

  it("CentOS/Fedora: os-release VERSION_ID, .0 added to a bare major", async () => {
    const fedora = root({
      "usr/lib/os-release": 'NAME="Fedora Linux"\nVERSION_ID=43\n',
      "etc/os-release": { link: "../usr/lib/os-release" },
    });
    expect(await distroRelease("fedora", fedora, {})).toEqual({ release: "43", prefix: "43.0" });
    const centos = root({ "etc/os-release": 'ID="centos"\nVERSION_ID="10.1"\n' });
    expect(await distroRelease("centos", centos, {})).toEqual({ release: "10.1", prefix: "10.1" });
    await expect(distroRelease("fedora", root({ "etc/os-release": "ID=x\n" }), {})).rejects.toThrow(
      /no VERSION_ID/,
    );
  });

  it("Gentoo: the stage3 timestamp as <year>.<month*100+day>", async () => {
    const r = root({ "etc/os-release": 'VERSION_ID="2.17"\n' });
    const at = (ts: string) => ({ artifact: `https://x/autobuilds/${ts}/stage3-amd64-openrc-${ts}.tar.xz` });
    expect(await distroRelease("gentoo", r, at("20261117T164025Z"))).toEqual({
      release: "20261117",
      prefix: "2026.1117",
    });
    expect((await distroRelease("gentoo", r, at("20270105T000000Z"))).prefix).toBe("2027.105");
    // No timestamp in the name: os-release.
    expect((await distroRelease("gentoo", r, { artifact: "https://x/stage3.tar.xz" })).prefix).toBe("2.17");
  });

  it("versions already in an output directory count as taken", async () => {
    const out = join(dir, "out");
    mkdirSync(out);
    writeFileSync(
      join(out, "a.manifest.json"),
      JSON.stringify({ name: "debian-13-x86_64", version: "13.8.0" }),
    );
    writeFileSync(join(out, "b.manifest.json"), JSON.stringify({ name: "other", version: "13.8.3" }));
    writeFileSync(join(out, "c.manifest.json"), "not json");
    expect(await versionsInDir(out, "debian-13-x86_64")).toEqual(["13.8.0"]);
    expect(await versionsInDir(join(dir, "absent"), "x")).toEqual([]);
  });
});
