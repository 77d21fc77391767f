import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Spec, Validation } from "@cyclonedx/cyclonedx-library";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseManifest } from "../../common/manifest.js";
import { cyclonedxJson } from "../../common/sbom/cyclonedx.js";
import { makeTemplate, pushTemplate, startTestRegistry, type TestRegistry } from "../helpers/registry.js";
import { templar } from "../helpers/registry-process.js";
import { makeTree } from "../helpers/template-fixture.js";

/** CycloneDX 1.6 SBOMs: every package with a purl, valid against the official JSON schema. */
const validator = new Validation.JsonStrictValidator(Spec.Version.v1dot6);

const debian = makeTemplate("sbomtest-13-x86_64", "13.1.0", {
  distro: "debian",
  extra: {
    release: "13",
    packages: [
      { name: "bash", version: "5.2.37-2", arch: "amd64" },
      { name: "libc6", version: "2.41-12", arch: "amd64" },
      { name: "libstdc++6", version: "14.2.0-19", arch: "amd64" },
    ],
    source: {
      method: "debootstrap",
      inputs: [{ uri: "http://deb.example/dists/trixie/InRelease", sha256: "a".repeat(64) }],
    },
  },
});

describe("SBOM", () => {
  let r: TestRegistry;
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "templar-sbom-"));
    r = await startTestRegistry({ gc: { interval: 0 }, more: { deltas: { previous: 0 } } });
    expect((await pushTemplate(r.url, r.tokens.push!, debian)).status).toBe(201);
  });
  afterAll(async () => {
    await r?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("lists every package with a purl and the template with its tar digest, valid CycloneDX 1.6", async () => {
    const text = cyclonedxJson(parseManifest(debian.manifest, "m"));
    expect(await validator.validate(text)).toBeNull();
    // The validator does check: a component without a name is refused.
    const broken = JSON.parse(text);
    delete broken.components[0].name;
    expect(await validator.validate(JSON.stringify(broken))).not.toBeNull();
    const bom = JSON.parse(text);
    expect(bom.specVersion).toBe("1.6");
    const purls = bom.components.map((c: { purl: string }) => c.purl);
    expect(purls).toEqual([
      "pkg:deb/debian/bash@5.2.37-2?arch=amd64&distro=debian-13",
      "pkg:deb/debian/libc6@2.41-12?arch=amd64&distro=debian-13",
      "pkg:deb/debian/libstdc%2B%2B6@14.2.0-19?arch=amd64&distro=debian-13",
    ]);
    const manifest = JSON.parse(debian.manifest.toString());
    expect(bom.metadata.component.hashes).toEqual([{ alg: "SHA-256", content: manifest.rootfs.tarSha256 }]);
    expect(bom.metadata.component.externalReferences.map((e: { type: string }) => e.type).sort()).toEqual([
      "distribution",
      "source-distribution",
    ]);
  });

  it("writes rpm and Gentoo purls the way scanners read them", () => {
    const fedora = makeTemplate("fedora-42-x86_64", "42.0.0", {
      distro: "fedora",
      extra: { release: "42", packages: [{ name: "bash", version: "5.2.37-1.fc42", arch: "x86_64" }] },
    });
    const gentoo = makeTemplate("gentoo-openrc-x86_64", "1.0.0", {
      distro: "gentoo",
      extra: { packages: [{ name: "app-shells/bash", version: "5.2_p37", arch: "amd64" }] },
    });
    const purl = (t: typeof fedora) =>
      JSON.parse(cyclonedxJson(parseManifest(t.manifest, "m"))).components[0].purl;
    expect(purl(fedora)).toBe("pkg:rpm/fedora/bash@5.2.37-1.fc42?arch=x86_64&distro=fedora-42");
    expect(purl(gentoo)).toBe("pkg:ebuild/app-shells/bash@5.2_p37");
  });

  it("is served at /sbom and written by pack --sbom", async () => {
    const res = await fetch(`${r.url}/v1/templates/${debian.name}/13.1.0/sbom`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("application/vnd.cyclonedx+json");
    expect(await validator.validate(await res.text())).toBeNull();
    expect((await fetch(`${r.url}/v1/templates/${debian.name}/9.9.9/sbom`)).status).toBe(404);

    const tree = join(dir, "tree");
    await makeTree(tree, 16);
    const out = join(dir, "out");
    const packed = await templar([
      "pack",
      tree,
      "--name",
      "sbompack-1-x86_64",
      "--version",
      "1.0.0",
      "--out",
      out,
      "--formats",
      "gz",
      "--sbom",
    ]);
    expect(packed.code, packed.stderr).toBe(0);
    const sbom = await readFile(join(out, "sbompack-1-x86_64-1.0.0.cdx.json"), "utf8");
    expect(await validator.validate(sbom)).toBeNull();
    expect(JSON.parse(sbom).metadata.component.name).toBe("sbompack-1-x86_64");
  });
});
