import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  emptyDirInRoot,
  joinInRoot,
  pathInRoot,
  readdirInRoot,
  readFileInRoot,
  realPathInRoot,
  removeInRoot,
  rewriteFileInRoot,
  statInRoot,
} from "../../builder/rootfs.js";
import { UserError } from "../../common/errors.js";

/**
 * Paths inside the root being built resolve as after chroot, whatever the root's symlinks say:
 * an absolute target starts at the root, `..` stops there. `outside` stands in for a file of
 * the build host, at an absolute path that the root's links name.
 */
const dir = mkdtempSync(join(tmpdir(), "templar-rootfs-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

function fresh() {
  const base = join(dir, `case-${++n}`);
  const root = join(base, "root");
  const outside = join(base, "outside");
  mkdirSync(join(root, "etc"), { recursive: true });
  mkdirSync(outside, { recursive: true });
  return { root, outside };
}

describe("resolving paths inside the root", () => {
  it("absolute and climbing symlinks stay inside the root; the last link is followed only for readers", async () => {
    const { root, outside } = fresh();
    symlinkSync(outside, join(root, "abs"));
    symlinkSync("../../../../../..", join(root, "etc/up"));
    symlinkSync("/etc", join(root, "etc-link"));
    expect(await realPathInRoot(root, "/abs/x")).toBe(join(root, outside, "x"));
    expect(await realPathInRoot(root, "/etc/up/etc")).toBe(join(root, "etc"));
    expect(await realPathInRoot(root, "/etc-link")).toBe(join(root, "etc"));
    expect(await pathInRoot(root, "/etc-link")).toBe(join(root, "etc-link"));
    expect(await realPathInRoot(root, "/..")).toBe(root);
  });

  it("a symlink loop is a UserError, not the host's file", async () => {
    const { root } = fresh();
    symlinkSync("/etc/shadow", join(root, "etc/shadow"));
    await expect(readFileInRoot(root, "/etc/shadow")).rejects.toThrow(UserError);
    await expect(readFileInRoot(root, "/etc/shadow")).rejects.toThrow(
      /too many symbolic links inside the root/,
    );
  });

  it("reads, lists and stats the root's file where the host's has the same path", async () => {
    const { root, outside } = fresh();
    writeFileSync(join(outside, "f"), "host");
    mkdirSync(join(root, outside), { recursive: true });
    writeFileSync(join(root, outside, "f"), "root");
    symlinkSync(outside, join(root, "etc/d"));
    symlinkSync(join(outside, "f"), join(root, "etc/f"));
    expect(await readFileInRoot(root, "/etc/f", "utf8")).toBe("root");
    expect(await readFileInRoot(root, "/etc/d/f", "utf8")).toBe("root");
    expect((await readdirInRoot(root, "/etc/d")).map((e) => e.name)).toEqual(["f"]);
    expect((await statInRoot(root, "/etc/f")).ino).toBe(statSync(join(root, outside, "f")).ino);
  });

  it("a fifo is refused at once, not read (it would hang the build)", async () => {
    const { root } = fresh();
    execFileSync("mkfifo", [join(root, "etc/inittab")]);
    await expect(readFileInRoot(root, "/etc/inittab")).rejects.toThrow(
      /\/etc\/inittab in the root is not a regular file/,
    );
  });

  it("rewrites a file in place (owner and mode kept), through a link inside the root only", async () => {
    const { root, outside } = fresh();
    writeFileSync(join(outside, "shadow"), "host\n");
    writeFileSync(join(root, "etc/shadow.real"), "old\n", { mode: 0o640 });
    symlinkSync("/etc/shadow.real", join(root, "etc/shadow"));
    await rewriteFileInRoot(root, "/etc/shadow", "new\n");
    expect(readFileSync(join(root, "etc/shadow.real"), "utf8")).toBe("new\n");
    expect(statSync(join(root, "etc/shadow.real")).mode & 0o777).toBe(0o640);
    symlinkSync(join(outside, "shadow"), join(root, "etc/gshadow"));
    await expect(rewriteFileInRoot(root, "/etc/gshadow", "x")).rejects.toThrow(/ENOENT/);
    expect(readFileSync(join(outside, "shadow"), "utf8")).toBe("host\n");
  });

  it("empties and removes inside the root only, never the root itself", async () => {
    const { root, outside } = fresh();
    writeFileSync(join(outside, "keep"), "host");
    symlinkSync(outside, join(root, "scratch"));
    await emptyDirInRoot(root, "/scratch");
    await removeInRoot(root, "/scratch/keep");
    expect(readFileSync(join(outside, "keep"), "utf8")).toBe("host");
    await expect(removeInRoot(root, "/")).rejects.toThrow(/refusing to remove the root itself/);
    expect(() => joinInRoot(root, [".."])).toThrow(/not a path inside the root/);
    expect(() => joinInRoot(root, ["a/b"])).toThrow(/not a path inside the root/);
  });
});
