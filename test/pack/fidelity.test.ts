import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { haveTools, isRoot } from "../helpers/require-tool.js";
import { DEEP_DIR, LONG_NAME, makeFixtureTree, type NodeInfo, SDE, snapshot, UTF8_NAME } from "./fixture.js";
import { removeDir, runCli, tempDir } from "./helpers.js";

const ready =
  isRoot() &&
  haveTools("tar", "zstd", "gzip", "getfattr", "setfattr", "setcap", "getcap", "setfacl", "getfacl", "mknod");

/** What GNU tar should give back: the source minus sockets, mtimes clamped to SDE. */
function expected(source: Map<string, NodeInfo>): Map<string, NodeInfo> {
  const out = new Map<string, NodeInfo>();
  for (const [path, info] of source) {
    if (info.type === "socket") continue;
    out.set(path, { ...info, mtime: Math.min(info.mtime, SDE) });
  }
  return out;
}

describe.skipIf(!ready)("GNU tar extracts exactly the tree that was packed", () => {
  let work: string;
  let tree: string;
  let source: Map<string, NodeInfo>;
  const artifact = (format: string) => join(work, "out", `debian-13-x86_64-test-1.0.0.tar.${format}`);

  beforeAll(() => {
    work = tempDir("fidelity");
    tree = join(work, "tree");
    makeFixtureTree(tree);
    source = snapshot(tree);
    const r = runCli([
      "pack",
      tree,
      "--name",
      "debian-13-x86_64-test",
      "--version",
      "1.0.0",
      "--out",
      join(work, "out"),
      "--source-date-epoch",
      String(SDE),
    ]);
    expect(r.code, r.stderr).toBe(0);
  });
  afterAll(() => removeDir(work));

  it("with --numeric-owner --xattrs --xattrs-include='*': contents, modes, owners, links, devices, names, xattrs", () => {
    const dest = join(work, "x1");
    mkdirSync(dest);
    const r = spawnSync(
      "tar",
      ["--numeric-owner", "--xattrs", "--xattrs-include=*", "-xpf", artifact("zst"), "-C", dest],
      { encoding: "utf8" },
    );
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const got = snapshot(dest);
    const want = expected(source);
    // Spot checks first, so a failure says what broke.
    expect(got.get("etc/huge-ids")).toMatchObject({ uid: 3_000_000, gid: 2_100_000 });
    expect(got.get("etc/big-ids")).toMatchObject({ uid: 300_000, gid: 400_000 });
    expect(got.get("usr/bin/suid")?.mode).toBe(0o4755);
    expect(got.get("tmp")?.mode).toBe(0o1777);
    expect(got.get("usr/bin/zcat")?.linkGroup).toBe("usr/bin/gunzip");
    expect(got.get("usr/bin/gzip")?.linkGroup).toBe("usr/bin/gunzip");
    expect(got.get("dev/null")).toMatchObject({ type: "chardev", rdev: want.get("dev/null")!.rdev });
    expect(got.get("dev/loop0")).toMatchObject({ type: "blockdev" });
    expect(got.get("dev/big-minor")?.rdev).toBe(want.get("dev/big-minor")!.rdev);
    expect(got.get("dev/initctl")?.type).toBe("fifo");
    expect(got.has("dev/log")).toBe(false);
    expect(got.get(join(DEEP_DIR, LONG_NAME))?.type).toBe("file");
    expect(got.get(LONG_NAME)?.type).toBe("file");
    expect(got.get(UTF8_NAME)?.type).toBe("file");
    expect(got.get("usr/bin/long-link")?.target).toBe(`/${"t".repeat(150)}/target`);
    expect(got.get("usr/bin/big")?.mtime).toBe(SDE);
    expect(got.get("usr/bin/ping")?.xattrs?.["user.binary"]).toBe("00ff0a3d5c");
    expect(execFileSync("getcap", [join(dest, "usr/bin/ping")], { encoding: "utf8" })).toContain(
      "cap_net_raw=ep",
    );
    // Then everything.
    expect(Object.fromEntries(got)).toEqual(Object.fromEntries(want));
  });

  it("restores ACLs the way Proxmox extracts (--acls --xattrs --xattrs-include=security.capability)", () => {
    const dest = join(work, "x2");
    mkdirSync(dest);
    const r = spawnSync(
      "tar",
      [
        "--numeric-owner",
        "--acls",
        "--xattrs",
        "--xattrs-include=security.capability",
        "-xpf",
        artifact("zst"),
        "-C",
        dest,
      ],
      { encoding: "utf8" },
    );
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const acl = (p: string) =>
      execFileSync("getfacl", ["-n", "-p", "--omit-header", p], { encoding: "utf8" });
    expect(acl(join(dest, "etc/acl-file"))).toBe(acl(join(tree, "etc/acl-file")));
    expect(acl(join(dest, "etc/acl-file"))).toContain("user:1234:rwx");
    expect(acl(join(dest, "srv"))).toBe(acl(join(tree, "srv")));
    expect(acl(join(dest, "srv"))).toContain("default:group:55:r-x");
    expect(execFileSync("getcap", [join(dest, "usr/bin/ping")], { encoding: "utf8" })).toContain(
      "cap_net_raw=ep",
    );
  });

  it("extracts without a warning the way vzctl does (tar --numeric-owner -Sp -x, from tar.gz)", () => {
    const dest = join(work, "x3");
    mkdirSync(dest);
    const r = spawnSync(
      "sh",
      ["-c", `gzip -dc "${artifact("gz")}" | tar --numeric-owner -Sp -x -C "${dest}"`],
      { encoding: "utf8" },
    );
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const got = snapshot(dest);
    expect(got.get("etc/huge-ids")).toMatchObject({ uid: 3_000_000, gid: 2_100_000 });
    expect(got.get("usr/bin/big")?.sha256).toBe(source.get("usr/bin/big")?.sha256);
  });

  it("lists its entries in GNU tar --sort=name order, with ./ paths and numeric owners only", () => {
    const ours = execFileSync("sh", ["-c", `zstd -dc "${artifact("zst")}" | tar -t`], {
      encoding: "utf8",
    }).split("\n");
    const gnu = execFileSync("sh", ["-c", `tar --sort=name -C "${tree}" -cf - . 2>/dev/null | tar -t`], {
      encoding: "utf8",
    })
      .split("\n")
      .filter((line) => line !== "./dev/log");
    expect(ours).toEqual(gnu);
    expect(ours[0]).toBe("./");
    const verbose = execFileSync("sh", ["-c", `zstd -dc "${artifact("zst")}" | tar -tv`], {
      encoding: "utf8",
    });
    expect(verbose).toMatch(/^-rw-r----- 0\/0 /m);
    expect(verbose).not.toMatch(/ root\//);
  });
});
