import { mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  chainCodec,
  chainCodecIntoNewFile,
  codecIntoNewFile,
  spawnFilter,
  writeNewFile,
} from "../../common/compression/filters.js";
import { sha256 } from "../helpers/registry.js";
import { haveTools } from "../helpers/require-tool.js";

/** Programs as stream filters: failures reported once, to whoever waits; files never through links. */
const ready = haveTools("zstd");

describe.skipIf(!ready)("compression filters", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "templar-filters-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("a program that fails before anyone waits for it is no unhandled rejection", async () => {
    const unhandled: unknown[] = [];
    const record = (reason: unknown) => unhandled.push(reason);
    process.on("unhandledRejection", record);
    try {
      const filter = spawnFilter(
        "zstd",
        ["-d", "-q", "-c"],
        Readable.from([Buffer.from("not zstd")]),
        "unpack x",
      );
      filter.output.resume();
      // zstd exits with its error while nobody awaits `done` (a registry's background job that
      // stopped at another error first).
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(unhandled).toEqual([]);
      await expect(filter.done).rejects.toThrow(/unpack x: zstd failed \(exit 1\)/);
    } finally {
      process.off("unhandledRejection", record);
    }
  });

  it("chains two programs and writes files without following links", async () => {
    const data = Buffer.from("hello, template\n".repeat(10_000));
    const source = join(dir, "data");
    await writeFile(source, data);
    // compress (program, from a file) -> decompress (program, reading the first one's pipe)
    const packed = join(dir, "data.zst");
    await codecIntoNewFile("tar.zst", "compress", source, packed, "compress data");
    const first = spawnFilter("zstd", ["-d", "-q", "-c", packed], null, "unpack");
    const second = await chainCodec(first, "tar.zst", "compress", "repack");
    const written = await writeNewFile(second.output, join(dir, "again.zst"), [second.done]);
    expect(written.hex).toBe(sha256(await readFile(packed)));

    // A link planted where the output goes is not followed, and the source is not read through one.
    const target = join(dir, "target");
    await writeFile(target, "untouched");
    await symlink(target, join(dir, "planted"));
    await expect(
      codecIntoNewFile("tar.zst", "compress", source, join(dir, "planted"), "c"),
    ).rejects.toThrow();
    expect(await readFile(target, "utf8")).toBe("untouched");
    await expect(
      codecIntoNewFile("tar.zst", "decompress", join(dir, "planted"), join(dir, "out"), "d"),
    ).rejects.toThrow();
  });

  it("a program's output compressed straight into a new file: the bytes of the chained codec, never through a link", async () => {
    const data = Buffer.from("a line of a template's tar\n".repeat(20_000));
    const packed = join(dir, "direct-source.zst");
    await writeFile(join(dir, "direct-source"), data);
    await codecIntoNewFile("tar.zst", "compress", join(dir, "direct-source"), packed, "compress");
    const viaNode = await chainCodec(
      spawnFilter("zstd", ["-d", "-q", "-c", packed], null, "unpack"),
      "tar.zst",
      "compress",
      "repack",
    );
    const expected = await writeNewFile(viaNode.output, join(dir, "via-node.zst"), [viaNode.done]);
    const direct = join(dir, "direct.zst");
    await chainCodecIntoNewFile(
      spawnFilter("zstd", ["-d", "-q", "-c", packed], null, "unpack"),
      "tar.zst",
      "compress",
      direct,
      "repack",
    );
    expect(sha256(await readFile(direct))).toBe(expected.hex);

    // The upstream program's failure is what the caller hears, once.
    const unhandled: unknown[] = [];
    const record = (reason: unknown) => unhandled.push(reason);
    process.on("unhandledRejection", record);
    try {
      await expect(
        chainCodecIntoNewFile(
          spawnFilter("zstd", ["-d", "-q", "-c"], Readable.from([Buffer.from("not zstd")]), "apply delta"),
          "tar.zst",
          "compress",
          join(dir, "broken.zst"),
          "repack",
        ),
      ).rejects.toThrow(/apply delta: zstd failed/);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(unhandled).toEqual([]);
    } finally {
      process.off("unhandledRejection", record);
    }

    const target = join(dir, "direct-target");
    await writeFile(target, "untouched");
    await symlink(target, join(dir, "direct-planted"));
    await expect(
      chainCodecIntoNewFile(
        spawnFilter("zstd", ["-d", "-q", "-c", packed], null, "unpack"),
        "tar.zst",
        "compress",
        join(dir, "direct-planted"),
        "repack",
      ),
    ).rejects.toThrow();
    expect(await readFile(target, "utf8")).toBe("untouched");
  });
});
