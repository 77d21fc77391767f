import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseDigest } from "../../common/digest.js";
import { layout as keys } from "../../registry/store/layout.js";
import { parseAplinfoLikePveam } from "../helpers/pveam-aplinfo.js";
import { haveTools } from "../helpers/require-tool.js";
import {
  type CompatRegistry,
  generateKey,
  gpgHome,
  packRootfs,
  push,
  startCompatRegistry,
} from "./fixture.js";

/**
 * `pveam update` and `pveam download` against the registry: aplinfo.dat.gz and its .asc are
 * fetched, the signature over the uncompressed index is checked with gpgv against the registry's
 * exported index key, every record is read by pveam's rules, and every Location downloads with
 * the sha512sum (and md5sum) the index promises.
 */
const ready = haveTools("gpg", "gpgv", "tar", "gzip", "zstd");

describe.skipIf(!ready)("Proxmox: aplinfo.dat as pveam reads it", () => {
  let reg: CompatRegistry;
  const templates: Record<string, { version: string; format: string }> = {};

  beforeAll(async () => {
    reg = await startCompatRegistry();
    const maintainer = await generateKey(join(reg.dir, "maintainer"), "PVE Maintainer");
    const specs: [string, string, string][] = [
      ["debian-13-x86_64-standard", "13.1.0", "gz,zst"],
      ["debian-13-x86_64-standard", "13.2.0", "gz,zst"],
      ["debian-13-x86_64-standard", "14.0.0-rc.1", "gz,zst"], // pre-release: never in the index
      ["gentoo-openrc-x86_64", "2026.11.1", "xz"], // no tar.zst: offered as tar.xz
    ];
    for (const [name, version, formats] of specs) {
      const p = await packRootfs(reg.dir, name, version, {
        signKey: maintainer.secret,
        epoch: 1_780_000_000,
        formats,
      });
      await push(reg, p.outDir);
    }
    templates["debian-13-x86_64-standard"] = { version: "13.2.0", format: "tar.zst" };
    templates["gentoo-openrc-x86_64"] = { version: "2026.11.1", format: "tar.xz" };
  }, 90_000);
  afterAll(async () => reg?.close());

  it("signs the uncompressed index with the index key (gpgv), and every record passes pveam's rules", async () => {
    const gz = Buffer.from(await (await fetch(`${reg.url}/aplinfo.dat.gz`)).arrayBuffer());
    const asc = await (await fetch(`${reg.url}/aplinfo.dat.asc`)).text();
    const plain = await (await fetch(`${reg.url}/aplinfo.dat`)).text();
    const text = gunzipSync(gz).toString("utf8");
    expect(text).toBe(plain);

    // The host's trusted keyring holds the registry's exported public key (binary, as gpgv wants).
    const gpg = await gpgHome(reg.dir);
    expect(gpg("--import", reg.indexKey.public).status).toBe(0);
    const keyring = join(reg.dir, "trusted.gpg");
    expect(gpg("--output", keyring, "--export", reg.indexKey.fingerprint).status).toBe(0);
    await writeFile(join(reg.dir, "aplinfo.dat"), text);
    await writeFile(join(reg.dir, "aplinfo.dat.asc"), asc);
    const ok = spawnSync(
      "gpgv",
      ["--keyring", keyring, join(reg.dir, "aplinfo.dat.asc"), join(reg.dir, "aplinfo.dat")],
      {
        encoding: "utf8",
      },
    );
    expect(ok.status, ok.stderr).toBe(0);
    await writeFile(join(reg.dir, "aplinfo.dat"), `${text}\n`);
    const bad = spawnSync("gpgv", [
      "--keyring",
      keyring,
      join(reg.dir, "aplinfo.dat.asc"),
      join(reg.dir, "aplinfo.dat"),
    ]);
    expect(bad.status).not.toBe(0);

    const indexUrl = `${reg.url}/aplinfo.dat`;
    const records = parseAplinfoLikePveam(text, indexUrl);
    expect(records.map((r) => r.fields.package)).toEqual(Object.keys(templates).sort());
    for (const record of records) {
      const want = templates[record.fields.package!]!;
      expect(record.fields).toMatchObject({
        version: want.version,
        type: "lxc",
        architecture: "amd64",
        section: "system",
        maintainer: "Test Templates <templates@example.org>",
      });
      expect(record.fields.os).toMatch(/^(debian-13|gentoo)$/);
      expect(record.fields.infopage).toBe(`${reg.url}/templates/${record.fields.package}/${want.version}`);
      expect(record.template).toBe(`${record.fields.package}_${want.version}_amd64.${want.format}`);
      expect(record.location).toBe(`${reg.url}/proxmox/${record.template}`);
      expect(record.headline.length).toBeGreaterThan(0);

      // pveam download: fetch Location, check sha512 (and md5).
      const head = await fetch(record.location, { method: "HEAD" });
      expect(head.status).toBe(200);
      const res = await fetch(record.location);
      const body = Buffer.from(await res.arrayBuffer());
      expect(head.headers.get("content-length")).toBe(String(body.length));
      expect(createHash("sha512").update(body).digest("hex")).toBe(record.fields.sha512sum);
      expect(createHash("md5").update(body).digest("hex")).toBe(record.fields.md5sum);
      // The checksums are kept as a derived object keyed by the blob digest.
      const sha256 = createHash("sha256").update(body).digest("hex");
      expect(parseDigest(`sha256:${sha256}`)).toBe(sha256);
      expect(await reg.storage.get(keys.derived(sha256))).not.toBeNull();
    }
  }, 60_000);

  it("keeps an older version's file downloadable and 404s names that do not exist", async () => {
    expect(
      (await fetch(`${reg.url}/proxmox/debian-13-x86_64-standard_13.1.0_amd64.tar.zst`, { method: "HEAD" }))
        .status,
    ).toBe(200);
    expect((await fetch(`${reg.url}/proxmox/debian-13-x86_64-standard_13.1.0_arm64.tar.zst`)).status).toBe(
      404,
    );
    expect((await fetch(`${reg.url}/proxmox/debian-13-x86_64-standard_9.9.9_amd64.tar.zst`)).status).toBe(
      404,
    );
    expect((await fetch(`${reg.url}/proxmox/../aplinfo.dat`)).status).not.toBe(500);
  });
});
