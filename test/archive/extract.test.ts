import { spawnSync } from "node:child_process";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { decompressTo, type ExtractPolicy, extractTar } from "../../builder/sources/archive/extract.js";
import { applyLayout } from "../../builder/sources/archive/layouts.js";
import { parseListingLine, unquoteC } from "../../builder/sources/archive/tar-list.js";
import { UserError } from "../../common/errors.js";
import { type CraftedEntry, craftTar } from "../fixtures/crafted-tar.js";
import { ociArchive } from "../fixtures/upstreams.js";
import { haveTools, isRoot } from "../helpers/require-tool.js";

const tools = haveTools("tar", "gzip", "setfattr", "getfattr", "setcap", "getcap");
const dir = mkdtempSync(join(tmpdir(), "templar-extract-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const rootfs: ExtractPolicy = { devices: true, whiteouts: false, maxBytes: 1 << 30 };
const layer: ExtractPolicy = { devices: false, whiteouts: true, maxBytes: 1 << 30 };
let n = 0;

function fresh(): { root: string; tar: (entries: CraftedEntry[]) => string } {
  const base = join(dir, `case-${++n}`);
  const root = join(base, "root");
  mkdirSync(root, { recursive: true });
  return {
    root,
    tar: (entries) => {
      const path = join(base, `t${Math.random().toString(36).slice(2)}.tar`);
      writeFileSync(path, craftTar(entries));
      return path;
    },
  };
}

async function refuses(
  entries: CraftedEntry[],
  why: RegExp,
  policy = rootfs,
  prepare?: (root: string) => void,
) {
  const { root, tar } = fresh();
  prepare?.(root);
  const before = readdirSync(root).sort();
  const err = await extractTar(tar(entries), root, policy, "test.tar").then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UserError);
  expect((err as Error).message).toMatch(why);
  expect((err as Error).message).toMatch(/nothing was extracted/);
  expect(readdirSync(root).sort()).toEqual(before);
  expect(existsSync(join(dir, "evil"))).toBe(false);
}

const file = (name: string, data = "x"): CraftedEntry => ({ name, type: "file", data });

describe.skipIf(!tools)("safe extraction refuses every escape, writing nothing", () => {
  it("absolute paths", () => refuses([file("ok"), file("/tmp/evil")], /absolute path/));
  it("'..' components", () => refuses([file("a/../../evil")], /contains '\.\.'/));
  it("a symlink pointing out of the root", () =>
    refuses([{ name: "etc/l", type: "symlink", link: "../../../evil" }], /points outside the root/));
  it("hardlinks pointing out (absolute and '..')", async () => {
    await refuses([{ name: "h", type: "hardlink", link: "/etc/passwd" }], /hardlink to the absolute path/);
    await refuses([{ name: "h", type: "hardlink", link: "../evil" }], /contains '\.\.'/);
  });
  it("a hardlink through a symlink", () =>
    refuses(
      [
        { name: "l", type: "symlink", link: "/etc" },
        { name: "h", type: "hardlink", link: "l/passwd" },
      ],
      /hardlink target .* goes through the symlink l/,
    ));
  it("writing through a hardlink to a symlink", () =>
    refuses(
      [
        { name: "l", type: "symlink", link: "/tmp" },
        { name: "h", type: "hardlink", link: "l" },
        file("h/evil"),
      ],
      /goes through the symlink h/,
    ));
  it("writing through a symlink from the same archive", () =>
    refuses([{ name: "l", type: "symlink", link: "/tmp" }, file("l/evil")], /goes through the symlink l/));
  it("a symlink replaced by a directory later in the stream", () =>
    refuses(
      [
        { name: "d", type: "symlink", link: "/tmp" },
        { name: "d/", type: "dir" },
      ],
      /a directory would replace a symlink/,
    ));
  it("writing through a symlink already in the root (a lower layer's)", () =>
    refuses([file("usr/evil")], /goes through the symlink usr/, layer, (root) =>
      symlinkSync(dir, join(root, "usr")),
    ));
  it("whiteouts that name the root, its parent or their own directory", async () => {
    const cases: [string, RegExp][] = [
      [".wh...", /path contains '\.\.'/], // the root's parent
      ["etc/.wh...", /path contains '\.\.'/], // the root
      ["etc/sub/.wh...", /path contains '\.\.'/],
      [".wh..", /a whiteout must name an entry of its directory/], // the root
      ["etc/.wh..", /a whiteout must name an entry of its directory/], // etc itself
    ];
    for (const [name, why] of cases) {
      let sibling = "";
      await refuses([{ name, type: "file" }], why, layer, (root) => {
        mkdirSync(join(root, "etc/sub"), { recursive: true });
        writeFileSync(join(root, "etc/passwd"), "root:x:0:0::/root:/bin/sh\n");
        sibling = join(root, "..", "sibling");
        writeFileSync(sibling, "next to the root");
      });
      expect(existsSync(sibling), name).toBe(true);
    }
  });
  it("device nodes in image layers, and outside /dev in a rootfs", async () => {
    await refuses([{ name: "dev/null", type: "chardev" }], /device nodes are not allowed/, layer);
    await refuses([{ name: "etc/null", type: "chardev" }], /device node outside \/dev/);
  });
  it("more content than the size limit (decompression bomb)", async () => {
    await refuses([file("a", "x".repeat(600)), file("b", "y".repeat(600))], /exceeds the limit/, {
      ...rootfs,
      maxBytes: 1000,
    });
    const zeros = join(dir, "zeros.gz");
    writeFileSync(zeros, spawnSync("gzip", ["-c"], { input: Buffer.alloc(8 << 20) }).stdout);
    await expect(decompressTo(zeros, join(dir, "zeros.tar"), 1 << 20, "bomb.gz")).rejects.toThrow(
      /decompresses to more than 1.0 MiB: refusing it/,
    );
    expect(existsSync(join(dir, "zeros.tar"))).toBe(false);
  });
});

describe.skipIf(!tools)("safe extraction keeps what a rootfs needs", () => {
  it("ownership, modes, binary xattrs, file capabilities, devices under /dev, absolute symlinks", async () => {
    const src = join(dir, "src");
    mkdirSync(join(src, "usr/bin"), { recursive: true });
    mkdirSync(join(src, "dev"));
    writeFileSync(join(src, "usr/bin/ping"), "#!/bin/sh\n", { mode: 0o755 });
    writeFileSync(join(src, "usr/bin/su"), "#!/bin/sh\n", { mode: 0o4755 });
    symlinkSync("/usr/share/zoneinfo/UTC", join(src, "localtime"));
    expect(spawnSync("setcap", ["cap_net_raw+ep", join(src, "usr/bin/ping")]).status).toBe(0);
    expect(
      spawnSync("setfattr", ["-n", "user.blob", "-v", "0x00ff0a80", join(src, "usr/bin/su")]).status,
    ).toBe(0);
    if (isRoot()) {
      spawnSync("chown", ["1234:5678", join(src, "usr/bin/su")]);
      spawnSync("mknod", [join(src, "dev/null"), "c", "1", "3"]);
    }
    spawnSync("chmod", ["4755", join(src, "usr/bin/su")]); // after chown, which clears set-id bits
    const tarPath = join(dir, "good.tar");
    spawnSync("tar", ["--xattrs", "--xattrs-include=*", "--numeric-owner", "-C", src, "-cf", tarPath, "."]);
    const { root } = fresh();
    const result = await extractTar(tarPath, root, rootfs, "good.tar");
    expect(result.members).toBeGreaterThan(5);
    expect(spawnSync("getcap", [join(root, "usr/bin/ping")], { encoding: "utf8" }).stdout).toMatch(
      /cap_net_raw[=+]ep/,
    );
    const blob = spawnSync("getfattr", ["-e", "hex", "-n", "user.blob", join(root, "usr/bin/su")], {
      encoding: "utf8",
    });
    expect(blob.stdout).toContain("user.blob=0x00ff0a80");
    expect(lstatSync(join(root, "usr/bin/su")).mode & 0o7777).toBe(0o4755);
    expect(readlinkSync(join(root, "localtime"))).toBe("/usr/share/zoneinfo/UTC");
    if (isRoot()) {
      expect(lstatSync(join(root, "usr/bin/su")).uid).toBe(1234);
      expect(lstatSync(join(root, "dev/null")).isCharacterDevice()).toBe(true);
    }
  });

  it("applies OCI whiteouts and opaque directories when layers are stacked", async () => {
    const { root, tar } = fresh();
    const lower = tar([file("a/x"), file("a/keep"), file("b/y"), file("c/z")]);
    const upper = tar([
      { name: "a/.wh.x", type: "file" },
      { name: "b/", type: "dir" },
      { name: "b/.wh..wh..opq", type: "file" },
      file("b/new", "new"),
    ]);
    await extractTar(lower, root, layer, "lower");
    await extractTar(upper, root, layer, "upper");
    expect(readdirSync(join(root, "a"))).toEqual(["keep"]);
    expect(readdirSync(join(root, "b"))).toEqual(["new"]);
    expect(readFileSync(join(root, "c/z"), "utf8")).toBe("x");
  });

  it("reads GNU tar's C-quoted listing, odd names included", () => {
    expect(unquoteC(String.raw`a\"b\nc\303\251\\`)).toBe('a"b\ncé\\'.replace("é", "\xc3\xa9"));
    const m = parseListingLine(String.raw`lrwxrwxrwx 0/0 0 2026-11-25 13:34:18 "d/l -> x" -> "../\"y"`, "t");
    expect(m).toMatchObject({ type: "symlink", name: "d/l -> x", link: '../"y' });
    const dev = parseListingLine(`crw-rw-rw- 0/5 1,3 2026-11-22 22:26:35 "dev/null"`, "t");
    expect(dev).toMatchObject({ type: "chardev", gid: 5, mode: 0o666 });
    expect(parseListingLine(`-rwsr-xr-x 0/0 9 2026-11-22 22:26:35 "su"`, "t").mode).toBe(0o4755);
  });
});

describe.skipIf(!tools || !haveTools("zstd"))("OCI images with stacked layers", () => {
  const lower = craftTar([
    { name: "etc/", type: "dir" },
    file("etc/old.conf", "old"),
    { name: "var/", type: "dir" },
    { name: "var/cache/", type: "dir" },
    file("var/cache/junk", "junk"),
  ]);
  const upper = craftTar([
    { name: "etc/.wh.old.conf", type: "file" },
    { name: "var/cache/", type: "dir" },
    { name: "var/cache/.wh..wh..opq", type: "file" },
    file("etc/new.conf", "new"),
  ]);
  const image = (tamper?: number) => {
    const path = join(dir, `image-${++n}.tar`);
    writeFileSync(
      path,
      ociArchive(
        [
          { tar: lower, codec: "gzip" },
          { tar: upper, codec: "zstd" },
        ],
        "amd64",
        tamper,
      ),
    );
    return path;
  };

  it("stacks a gzip and a zstd layer, applying whiteouts and opaque directories", async () => {
    const { root } = fresh();
    const work = mkdtempSync(join(dir, "work-"));
    const result = await applyLayout("oci", image(), root, { workDir: work, ociArch: "amd64" });
    expect(result.layers).toHaveLength(2);
    expect(readdirSync(join(root, "etc"))).toEqual(["new.conf"]);
    expect(readdirSync(join(root, "var/cache"))).toEqual([]);
  });

  it("refuses a layer whose whiteout names the root's parent, removing nothing", async () => {
    const { root } = fresh();
    const work = mkdtempSync(join(dir, "work-"));
    const path = join(dir, `image-${++n}.tar`);
    const hostile = craftTar([{ name: ".wh...", type: "file" }]);
    writeFileSync(
      path,
      ociArchive(
        [
          { tar: lower, codec: "gzip" },
          { tar: hostile, codec: "zstd" },
        ],
        "amd64",
      ),
    );
    await expect(applyLayout("oci", path, root, { workDir: work, ociArch: "amd64" })).rejects.toThrow(
      /refusing member "\.wh\.\.\.": path contains '\.\.'/,
    );
    expect(existsSync(work)).toBe(true);
    expect(readdirSync(root).sort()).toEqual(["etc", "var"]);
  });

  it("refuses a layer blob whose bytes do not match its digest, before extracting it", async () => {
    const { root } = fresh();
    const work = mkdtempSync(join(dir, "work-"));
    await expect(applyLayout("oci", image(0), root, { workDir: work, ociArch: "amd64" })).rejects.toThrow(
      /layer 1 of 2 .*: sha256 is \w+, the image says \w+: refusing it/,
    );
    expect(readdirSync(root)).toEqual([]);
  });
});
