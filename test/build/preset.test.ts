import {
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clampShadowDates } from "../../builder/family/presets/common.js";
import { debianPreset } from "../../builder/family/presets/debian.js";
import { rhelPreset } from "../../builder/family/presets/rhel.js";

/** The container preset on a small made-up Debian tree: sysvinit and systemd variants. */
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "templar-preset-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function tree(root: string, files: Record<string, string>): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
  }
}

describe("container preset (Debian)", () => {
  it("applies the checklist to a sysvinit root", async () => {
    const root = join(dir, "sysv");
    const outside = join(dir, "outside-resolv");
    await writeFile(outside, "nameserver 192.0.2.1\n");
    await tree(root, {
      "etc/inittab":
        "id:2:initdefault:\n1:2345:respawn:/sbin/getty --noclear 38400 tty1\n2:23:respawn:/sbin/getty 38400 tty2\n",
      "etc/ssh/ssh_host_ed25519_key": "secret",
      "etc/ssh/ssh_host_ed25519_key.pub": "pub",
      "etc/ssh/sshd_config": "keep",
      "etc/shadow": "root:$6$abc:20000:0:99999:7:::\ndaemon:*:20000:0:99999:7:::\n",
      "etc/hostname": "buildhost\n",
      "etc/machine-id": "0123456789abcdef0123456789abcdef\n",
      "var/log/dpkg.log": "lots",
      "var/log/apt/history.log": "lots",
      "var/log/syslog.1": "old",
      "var/cache/apt/archives/bash_5_amd64.deb": "deb",
      "var/cache/apt/pkgcache.bin": "bin",
      "var/lib/apt/lists/x_Packages": "index",
      "var/lib/dpkg/status-old": "old",
      "root/.bash_history": "ls",
      "tmp/junk": "x",
    });
    await mkdir(join(root, "etc/rcS.d"), { recursive: true });
    await symlink("../init.d/udev", join(root, "etc/rcS.d/S01udev"));
    await symlink("../init.d/keep", join(root, "etc/rcS.d/S02keep"));
    await symlink(outside, join(root, "etc/resolv.conf"));

    await debianPreset.apply(root, () => {});
    const text = (p: string) => readFile(join(root, p), "utf8");
    const inittab = await text("etc/inittab");
    expect(inittab).toMatch(/^#1:2345:respawn:\/sbin\/getty --noclear 38400 tty1$/m);
    expect(inittab).toMatch(/^#2:23:/m);
    expect(inittab).toMatch(/^co:2345:respawn:\/sbin\/getty --noclear 38400 console$/m);
    expect(await readdir(join(root, "etc/ssh"))).toEqual(["sshd_config"]);
    expect(await text("etc/shadow")).toMatch(/^root:!\$6\$abc:20000/m);
    expect(await text("etc/shadow")).toMatch(/^daemon:\*:/m);
    expect(await text("etc/hostname")).toBe("localhost\n");
    expect(await text("etc/machine-id")).toBe("");
    // The resolv.conf symlink was replaced, its target outside the root left alone.
    expect(await text("etc/resolv.conf")).toBe("");
    expect((await lstat(join(root, "etc/resolv.conf"))).isFile()).toBe(true);
    expect(await readFile(outside, "utf8")).toBe("nameserver 192.0.2.1\n");
    expect(await text("etc/default/locale")).toBe("LANG=C.UTF-8\n");
    expect(await readlink(join(root, "etc/mtab"))).toBe("/proc/mounts");
    expect(await readdir(join(root, "etc/rcS.d"))).toEqual(["S02keep"]);
    expect((await stat(join(root, "var/log/dpkg.log"))).size).toBe(0);
    expect((await stat(join(root, "var/log/apt/history.log"))).size).toBe(0);
    expect(await readdir(join(root, "var/log"))).not.toContain("syslog.1");
    expect(await readdir(join(root, "var/cache/apt/archives"))).toEqual([]);
    expect(await readdir(join(root, "var/cache/apt"))).toEqual(["archives"]);
    expect(await readdir(join(root, "var/lib/apt/lists"))).toEqual([]);
    expect(await readdir(join(root, "var/lib/dpkg"))).toEqual([]);
    expect(await readdir(join(root, "root"))).toEqual([]);
    expect(await readdir(join(root, "tmp"))).toEqual([]);
  });

  it("masks gettys and hardware units under systemd, keeping the console", async () => {
    const root = join(dir, "systemd");
    await tree(root, { "usr/lib/systemd/systemd": "", "etc/shadow": "root:*:1:::::\n" });
    await mkdir(join(root, "etc/systemd/system/getty.target.wants"), { recursive: true });
    await symlink(
      "/usr/lib/systemd/system/getty@.service",
      join(root, "etc/systemd/system/getty.target.wants/getty@tty1.service"),
    );
    await debianPreset.apply(root, () => {});
    expect(await readdir(join(root, "etc/systemd/system/getty.target.wants"))).toEqual([]);
    for (const unit of ["getty@tty1", "getty@tty6", "autovt@tty3", "systemd-udevd", "systemd-udev-trigger"]) {
      expect(await readlink(join(root, `etc/systemd/system/${unit}.service`))).toBe("/dev/null");
    }
    expect(await readlink(join(root, "etc/systemd/system/sys-kernel-debug.mount"))).toBe("/dev/null");
    expect(await lstat(join(root, "etc/systemd/system/console-getty.service")).catch(() => null)).toBeNull();
    expect(await readFile(join(root, "etc/systemd/logind.conf.d/90-templar-container.conf"), "utf8")).toMatch(
      /NAutoVTs=0/,
    );
    expect(await readFile(join(root, "etc/shadow"), "utf8")).toBe("root:!*:1:::::\n");
    // No ifupdown here: nothing is said about systemd-networkd.
    expect(await lstat(join(root, "etc/systemd/system-preset")).catch(() => null)).toBeNull();
  });

  it("with ifupdown, a preset keeps systemd-networkd off at first boot", async () => {
    const root = join(dir, "ifupdown");
    await tree(root, { "usr/lib/systemd/systemd": "", "usr/sbin/ifup": "" });
    await debianPreset.apply(root, () => {});
    const preset = await readFile(join(root, "etc/systemd/system-preset/00-templar.preset"), "utf8");
    // Read before systemd's 90-systemd.preset (which enables networkd); the first match wins.
    for (const unit of [
      "systemd-networkd.service",
      "systemd-networkd.socket",
      "systemd-networkd-wait-online.service",
    ])
      expect(preset).toMatch(new RegExp(`^disable ${unit.replace(/\./g, "\\.")}$`, "m"));
  });

  it("edits the root's files, never the build host's, through absolute symlinks", async () => {
    // `outside` stands in for the build host: the root's links name its files by absolute path.
    const root = join(dir, "links");
    const outside = join(dir, "links-host");
    const hostFiles = {
      shadow: "root:$6$host:19000:0:99999:7:::\n",
      inittab: "1:2345:respawn:/sbin/getty 38400 tty1\n",
      "log/syslog": "host log\n",
      "log/syslog.1": "old host log\n",
    };
    await tree(outside, hostFiles);
    await tree(root, { "etc/hostname": "buildhost\n", "var/lib/dpkg/status": "" });
    await symlink(join(outside, "shadow"), join(root, "etc/shadow"));
    await symlink(join(outside, "inittab"), join(root, "etc/inittab"));
    await symlink(join(outside, "log"), join(root, "var/log"));
    await debianPreset.apply(root, () => {});
    await clampShadowDates(root, 0);
    for (const [path, content] of Object.entries(hostFiles)) {
      expect(await readFile(join(outside, path), "utf8"), path).toBe(content);
    }
  });

  it("clamps shadow's last-change days to SOURCE_DATE_EPOCH", async () => {
    const root = join(dir, "shadow");
    await tree(root, {
      "etc/shadow": "root:!*:20782:0:99999:7:::\nold:*:100:0:99999:7:::\nnone:*::0:99999:7:::\n",
    });
    await clampShadowDates(root, 20758 * 86400 + 5);
    expect(await readFile(join(root, "etc/shadow"), "utf8")).toBe(
      "root:!*:20758:0:99999:7:::\nold:*:100:0:99999:7:::\nnone:*::0:99999:7:::\n",
    );
  });
});

describe("container preset (RHEL-likes)", () => {
  it("Fedora with systemd-networkd: enabled, since pct configures Fedora's network through it", async () => {
    const unit = "usr/lib/systemd/system/systemd-networkd.service";
    const fedora = join(dir, "fedora");
    await tree(fedora, {
      "usr/lib/os-release": "ID=fedora\nVERSION_ID=43\n",
      "usr/lib/systemd/systemd": "",
      [unit]: "",
    });
    await rhelPreset.apply(fedora, () => {});
    expect(
      await readlink(join(fedora, "etc/systemd/system/multi-user.target.wants/systemd-networkd.service")),
    ).toBe(`/${unit}`);
    expect(await readFile(join(fedora, "etc/systemd/system-preset/00-templar.preset"), "utf8")).toMatch(
      /^enable systemd-networkd\.service$/m,
    );
    // CentOS: NetworkManager applies what pct writes there; networkd stays as the image has it.
    const centos = join(dir, "centos");
    await tree(centos, {
      "usr/lib/os-release": 'ID="centos"\nVERSION_ID="10"\n',
      "usr/lib/systemd/systemd": "",
      [unit]: "",
    });
    await rhelPreset.apply(centos, () => {});
    expect(
      await lstat(join(centos, "etc/systemd/system/multi-user.target.wants")).catch(() => null),
    ).toBeNull();
  });
});
