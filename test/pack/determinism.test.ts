import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { getPriority } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { packTemplate } from "../../builder/pack/pack.js";
import { writeTar } from "../../builder/pack/tar-writer.js";
import { readTreeXattrs } from "../../builder/pack/xattrs.js";
import { parseManifest } from "../../common/manifest.js";
import { haveTools, isRoot } from "../helpers/require-tool.js";
import { makeFixtureTree, SDE } from "./fixture.js";
import { decompressWithProgram, removeDir, runCli, sha256Of, tempDir } from "./helpers.js";

const ready =
  isRoot() &&
  haveTools("tar", "zstd", "pigz", "gzip", "xz", "getfattr", "setfattr", "setcap", "setfacl", "mknod");

function outputs(dir: string): Record<string, Buffer> {
  return Object.fromEntries(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f))]));
}

describe.skipIf(!ready)("packing is deterministic", () => {
  let work: string;
  let tree: string;
  const pack = (rootfs: string, out: string, extra: string[] = []) => {
    const r = runCli([
      "pack",
      rootfs,
      "--name",
      "debian-13-x86_64-test",
      "--version",
      "1.0.0",
      "--out",
      out,
      "--formats",
      "zst,gz,xz",
      "--source-date-epoch",
      String(SDE),
      ...extra,
    ]);
    expect(r.stderr).toContain("skipped socket ./dev/log");
    expect(r.code, r.stderr).toBe(0);
    return outputs(out);
  };

  beforeAll(() => {
    work = tempDir("determinism");
    tree = join(work, "tree");
    makeFixtureTree(tree);
  });
  afterAll(() => removeDir(work));

  it("gives identical bytes twice, after reading every file, and for a cp -a copy with other inodes", () => {
    const first = pack(tree, join(work, "out1"));
    // Read everything (atimes move; O_NOATIME or not, nothing may change) and pack again.
    execFileSync("sh", [
      "-c",
      `find "${tree}" -type f -exec cat {} + > /dev/null; find "${tree}" -exec touch -a -h {} +`,
    ]);
    const second = pack(tree, join(work, "out2"));
    execFileSync("cp", ["-a", tree, join(work, "copy")]);
    const inodeOf = (p: string) => execFileSync("stat", ["-c", "%i", p], { encoding: "utf8" });
    expect(inodeOf(join(work, "copy", "etc", "hosts"))).not.toBe(inodeOf(join(tree, "etc", "hosts")));
    const third = pack(join(work, "copy"), join(work, "out3"));

    expect(Object.keys(first).sort()).toEqual([
      "debian-13-x86_64-test-1.0.0.manifest.json",
      "debian-13-x86_64-test-1.0.0.tar.gz",
      "debian-13-x86_64-test-1.0.0.tar.xz",
      "debian-13-x86_64-test-1.0.0.tar.zst",
    ]);
    for (const [name, bytes] of Object.entries(first)) {
      expect(sha256Of(second[name]!), `${name} after touching atimes`).toBe(sha256Of(bytes));
      expect(sha256Of(third[name]!), `${name} of the cp -a copy`).toBe(sha256Of(bytes));
    }
  });

  it("has the same tar inside every format, and it is the manifest's rootfs.tarSha256", () => {
    const dir = join(work, "out1");
    const manifest = parseManifest(readFileSync(join(dir, "debian-13-x86_64-test-1.0.0.manifest.json")));
    expect(manifest.created).toBe("2023-11-14T22:13:20Z");
    expect(manifest.artifacts.map((a) => a.format)).toEqual(["tar.zst", "tar.gz", "tar.xz"]);
    for (const artifact of manifest.artifacts) {
      const path = join(dir, `debian-13-x86_64-test-1.0.0.${artifact.format}`);
      const file = readFileSync(path);
      expect(artifact.digest).toBe(`sha256:${sha256Of(file)}`);
      expect(artifact.size).toBe(file.length);
      const tar = decompressWithProgram(path);
      expect(sha256Of(tar), artifact.format).toBe(manifest.rootfs.tarSha256);
      expect(tar.length).toBe(manifest.rootfs.tarSize);
    }
    expect(manifest.rootfs.entries).toBeGreaterThan(30);
  });

  it("in-process compressors write the same tar as the programs (fifos)", async () => {
    const out = join(work, "inproc");
    const result = await packTemplate({
      rootfs: tree,
      outDir: out,
      name: "debian-13-x86_64-test",
      version: "1.0.0",
      formats: ["tar.zst", "tar.gz"],
      sourceDateEpoch: SDE,
      inProcessOnly: true,
    });
    const programManifest = parseManifest(
      readFileSync(join(work, "out1", "debian-13-x86_64-test-1.0.0.manifest.json")),
    );
    expect(result.manifest.rootfs).toEqual(programManifest.rootfs);
    expect(result.warnings).toEqual(["skipped socket ./dev/log"]);
    for (const format of ["tar.zst", "tar.gz"] as const) {
      // Decompressed by the real zstd and gzip programs.
      const tar = decompressWithProgram(result.files[format]!);
      expect(sha256Of(tar), format).toBe(programManifest.rootfs.tarSha256);
    }
    // Deterministic on this path too.
    const again = await packTemplate({
      rootfs: tree,
      outDir: join(work, "inproc2"),
      name: "debian-13-x86_64-test",
      version: "1.0.0",
      formats: ["tar.zst", "tar.gz"],
      sourceDateEpoch: SDE,
      inProcessOnly: true,
    });
    expect(again.manifest.artifacts).toEqual(result.manifest.artifacts);
  });

  it("gives the packing thread its priority back once zstd has all the input", async () => {
    const before = getPriority();
    const result = await packTemplate({
      rootfs: tree,
      outDir: join(work, "priority"),
      name: "debian-13-x86_64-test",
      version: "1.0.0",
      formats: ["tar.zst"],
      sourceDateEpoch: SDE,
    });
    expect(result.manifest.artifacts).toHaveLength(1);
    expect(getPriority()).toBe(before);
  });

  it("writes the same tar whatever the chunk size and however the receiver holds chunks back", async () => {
    const xattrs = await readTreeXattrs(tree);
    const write = async (mode: "whole" | "sync" | "backpressure" | "pool") => {
      const parts: Buffer[] = [];
      const chunkSize = mode === "whole" ? 1 << 24 : 1024;
      let free = 2;
      const result = await writeTar({
        root: tree,
        xattrs,
        mtimeClamp: SDE,
        chunkSize,
        warn: () => {},
        emit: (chunk) => {
          parts.push(Buffer.from(chunk));
          if (mode === "pool") free++;
          return mode === "backpressure" ? new Promise((resolve) => setImmediate(resolve)) : undefined;
        },
        // "pool": a chunk only after an emit gave one back, now or after a turn of the event loop.
        allocChunk:
          mode === "pool"
            ? () => {
                if (free-- > 1) return Buffer.alloc(chunkSize);
                return new Promise((resolve) => setImmediate(() => resolve(Buffer.alloc(chunkSize))));
              }
            : undefined,
      });
      return { tar: Buffer.concat(parts), result, chunks: parts.length };
    };
    // One chunk holds the whole tar: no boundary at all.
    const whole = await write("whole");
    expect(whole.chunks).toBe(1);
    expect(whole.result.size).toBe(whole.tar.length);
    // 1 KiB chunks: PAX headers, file data and padding all cross chunk boundaries, and headers
    // land exactly at a chunk's end; every branch of the writer's slow path runs.
    for (const mode of ["sync", "backpressure", "pool"] as const) {
      const { tar, result, chunks } = await write(mode);
      expect(chunks, mode).toBe(whole.tar.length / 1024);
      expect(sha256Of(tar), mode).toBe(sha256Of(whole.tar));
      expect(result, mode).toEqual(whole.result);
    }
  });

  it("refuses tar.xz without the xz program, naming it, and leaves nothing behind", async () => {
    const out = join(work, "noxz");
    await expect(
      packTemplate({
        rootfs: tree,
        outDir: out,
        name: "t",
        version: "1.0.0",
        formats: ["tar.zst", "tar.xz"],
        inProcessOnly: true,
      }),
    ).rejects.toThrow(/tar\.xz needs the xz program \(package xz-utils\)/);
    expect(() => readdirSync(out)).toThrow();
  });
});
