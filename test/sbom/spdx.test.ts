import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseManifest } from "../../common/manifest.js";
import { packagePurl } from "../../common/sbom/purl.js";
import { type SpdxDocument, spdxJson } from "../../common/sbom/spdx.js";
import { makeTemplate, pushTemplate, startTestRegistry, type TestRegistry } from "../helpers/registry.js";
import { templar } from "../helpers/registry-process.js";
import { spdxValidator } from "../helpers/spdx-schema.js";
import { makeTree } from "../helpers/template-fixture.js";

/** SPDX 2.3 SBOMs: valid against the specification's schema, every package with its purl. */
const validate = spdxValidator();

const debian = makeTemplate("spdxtest-13-x86_64", "13.1.0", {
  distro: "debian",
  extra: {
    release: "13",
    packages: [
      { name: "bash", version: "5.2.37-2", arch: "amd64" },
      { name: "libstdc++6", version: "14.2.0-19", arch: "amd64" },
      { name: "libc6", version: "2.41-12", arch: "amd64" },
      { name: "libc6", version: "2.41-12", arch: "i386" },
    ],
    source: {
      method: "debootstrap",
      inputs: [{ uri: "http://deb.example/dists/trixie/InRelease", sha256: "a".repeat(64) }],
    },
  },
});
const fedora = makeTemplate("fedora-42-x86_64", "42.0.0", {
  distro: "fedora",
  extra: { release: "42", packages: [{ name: "bash", version: "5.2.37-1.fc42", arch: "x86_64" }] },
});
const gentoo = makeTemplate("gentoo-openrc-x86_64", "1.0.0", {
  distro: "gentoo",
  extra: { packages: [{ name: "app-shells/bash", version: "5.2_p37", arch: "amd64" }] },
});

describe("SPDX 2.3", () => {
  let r: TestRegistry;
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "templar-spdx-"));
    r = await startTestRegistry({ gc: { interval: 0 }, more: { deltas: { previous: 0 } } });
    expect((await pushTemplate(r.url, r.tokens.push!, debian)).status).toBe(201);
  });
  afterAll(async () => {
    await r?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("is valid for Debian, Fedora and Gentoo templates and lists every package with its purl", () => {
    for (const t of [debian, fedora, gentoo]) {
      const manifest = parseManifest(t.manifest, "m");
      const text = spdxJson(manifest);
      expect(validate(text), t.name).toBeNull();
      // Derived from the manifest alone: the same bytes every time.
      expect(spdxJson(parseManifest(t.manifest, "m"))).toBe(text);
      const doc = JSON.parse(text) as SpdxDocument;
      expect(doc.spdxVersion).toBe("SPDX-2.3");
      const purls = doc.packages.flatMap((p) => (p.externalRefs ?? []).map((e) => e.referenceLocator));
      expect(purls).toEqual(manifest.packages!.map((p) => packagePurl(manifest, p)));
    }
  });

  it("gives every element a unique, well-formed id that its relationships name", () => {
    const doc = JSON.parse(spdxJson(parseManifest(debian.manifest, "m"))) as SpdxDocument;
    const ids = doc.packages.map((p) => p.SPDXID);
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) expect(id).toMatch(/^SPDXRef-[A-Za-z0-9.-]+$/);
    // libc6 for two arches: two packages; libstdc++6 keeps its name, its id spells the plus signs.
    expect(doc.packages.filter((p) => p.name === "libc6")).toHaveLength(2);
    expect(doc.packages.find((p) => p.name === "libstdc++6")!.SPDXID).toBe(
      "SPDXRef-Package-libstdc-2b--2b-6-amd64",
    );
    const known = new Set([...ids, "SPDXRef-DOCUMENT"]);
    for (const rel of doc.relationships) {
      expect(known.has(rel.spdxElementId)).toBe(true);
      expect(known.has(rel.relatedSpdxElement)).toBe(true);
    }
    const manifest = JSON.parse(debian.manifest.toString());
    const root = doc.packages.find((p) => p.SPDXID === "SPDXRef-Template")!;
    expect(root.checksums).toEqual([{ algorithm: "SHA256", checksumValue: manifest.rootfs.tarSha256 }]);
    expect(doc.relationships.filter((x) => x.relationshipType === "CONTAINS")).toHaveLength(4);
    expect(doc.relationships.filter((x) => x.relationshipType === "EXPANDED_FROM_ARCHIVE")).toHaveLength(
      manifest.artifacts.length,
    );
  });

  it("the schema check does check: a package without an id, or a wrong checksum algorithm, is refused", () => {
    const doc = JSON.parse(spdxJson(parseManifest(debian.manifest, "m")));
    delete doc.packages[1].SPDXID;
    expect(validate(JSON.stringify(doc))).toMatch(/SPDXID/);
    const other = JSON.parse(spdxJson(parseManifest(debian.manifest, "m")));
    other.packages[0].checksums[0].algorithm = "SHA-256";
    expect(validate(JSON.stringify(other))).not.toBeNull();
  });

  it("is served at /sbom?format=spdx and written by pack --sbom beside the CycloneDX one", async () => {
    const res = await fetch(`${r.url}/v1/templates/${debian.name}/13.1.0/sbom?format=spdx`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/spdx+json");
    expect(await res.text()).toBe(spdxJson(parseManifest(debian.manifest, "m")));
    const bogus = await fetch(`${r.url}/v1/templates/${debian.name}/13.1.0/sbom?format=bogus`);
    expect(bogus.status).toBe(400);
    expect(await bogus.text()).toContain('SBOM format \\"bogus\\": expected cyclonedx or spdx');

    const tree = join(dir, "tree");
    await makeTree(tree, 16);
    const out = join(dir, "out");
    const args = ["pack", tree, "--name", "spdxpack-1-x86_64", "--version", "1.0.0", "--out", out];
    const packed = await templar([...args, "--formats", "gz", "--sbom", "--json"]);
    expect(packed.code, packed.stderr).toBe(0);
    const result = JSON.parse(packed.stdout) as { sbom: string[]; manifestPath: string };
    expect(result.sbom).toEqual([
      join(out, "spdxpack-1-x86_64-1.0.0.cdx.json"),
      join(out, "spdxpack-1-x86_64-1.0.0.spdx.json"),
    ]);
    const manifest = parseManifest(await readFile(result.manifestPath), result.manifestPath);
    expect(await readFile(result.sbom[1]!, "utf8")).toBe(spdxJson(manifest));
    expect(validate(await readFile(result.sbom[1]!, "utf8"))).toBeNull();
  });
});
