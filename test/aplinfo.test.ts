import { describe, expect, it } from "vitest";
import type { Manifest } from "../common/manifest.js";
import { proxmoxFileName } from "../common/manifest-files.js";
import { PROXMOX_VERSION, renderAplinfo } from "../registry/channels/aplinfo.js";
import { parseAplinfoLikePveam } from "./helpers/pveam-aplinfo.js";

const hex = "b".repeat(64);
function manifest(name: string, version: string, extra: Partial<Manifest> = {}): Manifest {
  return {
    schemaVersion: 1,
    name,
    version,
    created: "2026-11-25T00:00:00Z",
    rootfs: { tarSha256: hex, tarSize: 1, entries: 1 },
    artifacts: [{ format: "tar.zst", digest: `sha256:${hex}`, size: 1 }],
    ...extra,
  };
}

describe("aplinfo.dat", () => {
  it("every record passes pveam's parser with all required fields", () => {
    const manifests = [
      manifest("debian-13-x86_64-minimal", "13.2.0", {
        distro: "debian",
        release: "13",
        arch: "x86_64",
        description: "Debian 13 (trixie), minimal\nsecond line",
      }),
      manifest("centos-10-aarch64", "10.0.1", { distro: "centos", release: "10", arch: "aarch64" }),
      manifest("gentoo-openrc-x86_64", "2026.11.1"),
    ];
    const text = renderAplinfo(
      manifests.map((m) => ({
        manifest: m,
        location: `proxmox/${proxmoxFileName(m)}`,
        md5: "0".repeat(32),
        sha512: "1".repeat(128),
        infopage: `https://registry.example/templates/${m.name}`,
        maintainer: "Example Templates <t@example.org>",
      })),
    );
    const records = parseAplinfoLikePveam(text, "https://registry.example/aplinfo.dat");
    expect(records.map((r) => r.fields.package)).toEqual([
      "centos-10-aarch64",
      "debian-13-x86_64-minimal",
      "gentoo-openrc-x86_64",
    ]);
    const debian = records[1]!;
    expect(debian.fields).toMatchObject({
      type: "lxc",
      os: "debian-13",
      architecture: "amd64",
      version: "13.2.0",
      section: "system",
    });
    expect(debian.template).toBe("debian-13-x86_64-minimal_13.2.0_amd64.tar.zst");
    expect(debian.location).toBe(
      "https://registry.example/proxmox/debian-13-x86_64-minimal_13.2.0_amd64.tar.zst",
    );
    expect(debian.headline).toBe("Debian 13 (trixie), minimal second line");
    expect(debian.fields.sha512sum).toHaveLength(128);
    expect(records[0]!.fields.architecture).toBe("arm64");
  });

  it("the parser used by the test is strict: it rejects what pveam rejects", () => {
    expect(() =>
      parseAplinfoLikePveam(
        "Package: x\nVersion: v1\nType: lxc\nOS: a\nInfopage: i\nLocation: a.tar.gz\nDescription: d",
        "http://h/a",
      ),
    ).toThrow(/version/);
    expect(() =>
      parseAplinfoLikePveam(
        "Package: x\nVersion: 1\nType: qemu\nOS: a\nInfopage: i\nDescription: d",
        "http://h/a",
      ),
    ).toThrow(/type/);
    expect(() =>
      parseAplinfoLikePveam(
        "Package: x\nVersion: 1\nType: lxc\nLocation: a.tar.gz\nDescription: d",
        "http://h/a",
      ),
    ).toThrow(/incomplete/);
  });

  it("semantic versions fit pveam's Version pattern", () => {
    for (const v of ["13.2.0", "1.0.0-rc.1", "2026.11.25"]) expect(PROXMOX_VERSION.test(v)).toBe(true);
  });
});
