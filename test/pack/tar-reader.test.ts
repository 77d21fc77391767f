import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { END_OF_ARCHIVE, encodeHeader, paxRecord } from "../../builder/pack/tar-header.js";
import { parsePax, readTar, type TarEntry, TarFormatError } from "../../builder/pack/tar-reader.js";
import { haveTools, isRoot } from "../helpers/require-tool.js";
import { LONG_NAME, makeFixtureTree } from "./fixture.js";
import { removeDir, tempDir } from "./helpers.js";

async function* chunked(data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

async function readAll(data: Buffer, chunk = 7777) {
  const out: { entry: TarEntry; body: Buffer }[] = [];
  for await (const entry of readTar(chunked(data, chunk))) {
    const parts: Buffer[] = [];
    if (entry.type === "file") for await (const part of entry.body()) parts.push(part);
    out.push({ entry, body: Buffer.concat(parts) });
  }
  return out;
}

describe("PAX records", () => {
  it("count their own length digits, also across a digit boundary", () => {
    for (let n = 80; n < 120; n++) {
      const record = paxRecord("k", Buffer.alloc(n, 0x61));
      expect(Number(record.toString("latin1").split(" ")[0])).toBe(record.length);
    }
  });
  it("keep binary values byte for byte", () => {
    const value = Buffer.from([0x01, 0x00, 0x00, 0x02, 0xff, 0x0a, 0x3d, 0xc3]);
    expect(
      parsePax(paxRecord("SCHILY.xattr.security.capability", value)).get("SCHILY.xattr.security.capability"),
    ).toEqual(value);
  });
});

describe("readTar on hand-made archives", () => {
  const file = encodeHeader({
    path: Buffer.from("./a"),
    type: "file",
    mode: 0o644,
    uid: 3_000_000,
    gid: 0,
    size: 5,
    mtime: 1,
    pax: [["SCHILY.xattr.user.x", Buffer.from([0, 255])]],
  });
  const archive = Buffer.concat([file, Buffer.from("hello"), Buffer.alloc(507), END_OF_ARCHIVE]);

  it("reads PAX ids above 2^21 and binary xattrs, in any chunking", async () => {
    for (const chunk of [1, 511, 512, 4096]) {
      const [only, ...rest] = await readAll(archive, chunk);
      expect(rest).toEqual([]);
      expect(only!.entry.uid).toBe(3_000_000);
      expect(only!.entry.xattrs.get("user.x")).toEqual(Buffer.from([0, 255]));
      expect(only!.body.toString()).toBe("hello");
    }
  });

  it("reports a truncated archive and a bad checksum", async () => {
    await expect(readAll(archive.subarray(0, 700))).rejects.toThrow(TarFormatError);
    await expect(readAll(archive.subarray(0, 1024))).rejects.toThrow(/truncated/);
    const bad = Buffer.from(archive);
    bad[600] = 0x41; // inside the PAX header's data: checksum of the next header still fine, PAX broken
    bad[20] = bad[20]! ^ 1; // name byte of the PAX header: checksum now wrong
    await expect(readAll(bad)).rejects.toThrow(/checksum/);
  });

  it("skips bodies nobody reads", async () => {
    const two = Buffer.concat([
      file,
      Buffer.from("hello"),
      Buffer.alloc(507),
      file,
      Buffer.from("hello"),
      Buffer.alloc(507),
      END_OF_ARCHIVE,
    ]);
    let n = 0;
    for await (const entry of readTar(chunked(two, 100))) {
      expect(entry.path.toString()).toBe("./a");
      n++;
    }
    expect(n).toBe(2);
  });
});

const ready = isRoot() && haveTools("tar", "setcap", "setfattr", "setfacl", "mknod", "getfattr");

describe.skipIf(!ready)("readTar on GNU tar's own archives", () => {
  let work: string;
  beforeAll(() => {
    work = tempDir("reader");
    makeFixtureTree(join(work, "tree"));
  });
  afterAll(() => removeDir(work));

  for (const format of ["posix", "gnu"]) {
    it(`reads --format=${format} with long names, links and binary xattrs`, async () => {
      const tarFile = join(work, `${format}.tar`);
      execFileSync("sh", [
        "-c",
        `tar --format=${format} --xattrs --xattrs-include='*' --sort=name --numeric-owner -C "${join(work, "tree")}" -cf "${tarFile}" . 2>/dev/null || true`,
      ]);
      const entries = await readAll(readFileSync(tarFile));
      const listing = execFileSync("tar", ["-tf", tarFile], { encoding: "utf8" }).trim().split("\n");
      expect(entries.map((e) => e.entry.path.toString("utf8"))).toEqual(listing);
      const byName = new Map(entries.map((e) => [e.entry.path.toString("utf8"), e]));
      expect(byName.get(`./${LONG_NAME}`)?.body.toString()).toBe("long\n");
      expect(byName.get("./usr/bin/zcat")?.entry.type).toBe("hardlink");
      expect(byName.get("./usr/bin/long-link")?.entry.linkpath.toString()).toBe(`/${"t".repeat(150)}/target`);
      expect(byName.get("./dev/null")).toMatchObject({
        entry: { type: "chardev", devmajor: 1, devminor: 3 },
      });
      // Buffer.equals: vitest's deep equality walks megabytes byte by byte.
      expect(byName.get("./usr/bin/big")?.body.equals(readFileSync(join(work, "tree/usr/bin/big")))).toBe(
        true,
      );
      if (format === "posix") {
        expect(byName.get("./etc/huge-ids")?.entry.uid).toBe(3_000_000);
        const cap = byName.get("./usr/bin/ping")?.entry.xattrs.get("security.capability");
        expect(cap?.[0]).toBe(1); // raw vfs_cap_data, not UTF-8 mangled
        expect(cap?.length).toBe(20);
      } else {
        expect(byName.get("./etc/huge-ids")?.entry.uid).toBe(3_000_000); // base-256
      }
    });
  }
});
