import {
  copyFile,
  lstat,
  mkdir,
  mkdtemp,
  readFile,
  readlink,
  rm,
  symlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { StaticAddress } from "../../builder/boot-test/families/family.js";
import { netmask } from "../../builder/boot-test/families/family.js";
import { testFamilyFor } from "../../builder/boot-test/families/index.js";
import { detectInit, type InitInfo, readOsRelease } from "../../builder/boot-test/root.js";

/**
 * What `templar test` writes into a root before booting it: the network configuration a
 * container host (pct, vzctl) writes for each distro, on small made-up roots. No root needed.
 */
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "templar-boot-families-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const NET: StaticAddress = { iface: "eth0", address: "198.18.7.2", prefix: 24, gateway: "198.18.7.1" };
const SYSTEMD: InitInfo = { kind: "systemd", path: "/usr/lib/systemd/systemd" };
const OPENRC: InitInfo = { kind: "openrc", path: "/sbin/init" };

async function root(name: string, files: Record<string, string>): Promise<string> {
  const r = join(dir, name);
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(r, path)), { recursive: true });
    await writeFile(join(r, path), content);
  }
  return r;
}

async function configure(r: string, init: InitInfo = SYSTEMD, distro?: string) {
  const os = await readOsRelease(r);
  const family = testFamilyFor(distro, os);
  return { family: family.name, ...(await family.configureNetwork(r, os, init, NET)) };
}

describe("network configuration written as the host would", () => {
  it("Debian: pve-container's stanza appended to /etc/network/interfaces; no ifup is named", async () => {
    const lo = "# comment\nauto lo\niface lo inet loopback\n";
    const r = await root("debian", {
      "usr/lib/os-release": 'ID=debian\nVERSION_ID="13"\nPRETTY_NAME="Debian GNU/Linux 13 (trixie)"\n',
      "etc/network/interfaces": lo,
      "usr/sbin/ifup": "",
    });
    await symlink("../usr/lib/os-release", join(r, "etc/os-release"));
    expect(await configure(r)).toEqual({
      family: "debian",
      describe: "/etc/network/interfaces (ifupdown)",
      service: "networking.service",
      problem: undefined,
    });
    expect(await readFile(join(r, "etc/network/interfaces"), "utf8")).toBe(
      `${lo}\nauto eth0\niface eth0 inet static\n\taddress 198.18.7.2/24\n\tgateway 198.18.7.1\n`,
    );
    const bare = await root("debian-bare", { "etc/os-release": "ID=debian\n" });
    expect((await configure(bare)).problem).toMatch(/the template has no ifup \(ifupdown\)/);
  });

  it("Ubuntu 24.04 and Fedora: a systemd-networkd .network file", async () => {
    for (const [name, osRelease] of [
      ["ubuntu", 'ID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\n'],
      ["fedora", "ID=fedora\nVERSION_ID=43\n"],
    ] as const) {
      const r = await root(name, { "etc/os-release": osRelease, "usr/lib/systemd/systemd-networkd": "" });
      expect(await configure(r)).toMatchObject({ service: "systemd-networkd.service", problem: undefined });
      expect(await readFile(join(r, "etc/systemd/network/eth0.network"), "utf8")).toMatch(
        /^\[Match\]\nName = eth0\n\n\[Network\]\n.*\nAddress = 198\.18\.7\.2\/24\nGateway = 198\.18\.7\.1\nDHCP = no\n/,
      );
    }
    const noNetworkd = await root("fedora-bare", { "etc/os-release": "ID=fedora\nVERSION_ID=43\n" });
    expect((await configure(noNetworkd)).problem).toBe("the template has no systemd-networkd");
  });

  it("CentOS Stream 9: an ifcfg file; 10: a NetworkManager keyfile (0600)", async () => {
    const c9 = await root("centos9", {
      "etc/os-release": 'ID="centos"\nID_LIKE="rhel fedora"\nVERSION_ID="9"\n',
      "usr/sbin/NetworkManager": "",
    });
    expect(await configure(c9)).toMatchObject({ family: "rhel", service: "NetworkManager.service" });
    expect(await readFile(join(c9, "etc/sysconfig/network-scripts/ifcfg-eth0"), "utf8")).toMatch(
      /^DEVICE=eth0\nONBOOT=yes\nUUID=[0-9a-f-]{36}\nBOOTPROTO=none\nIPADDR=198\.18\.7\.2\nNETMASK=255\.255\.255\.0\nGATEWAY=198\.18\.7\.1\n$/,
    );
    const c10 = await root("centos10", { "etc/os-release": 'ID="centos"\nVERSION_ID="10"\n' });
    expect(await configure(c10)).toMatchObject({
      describe: "/etc/NetworkManager/system-connections/eth0.nmconnection (NetworkManager)",
      problem: "the template has no NetworkManager",
    });
    const keyfile = join(c10, "etc/NetworkManager/system-connections/eth0.nmconnection");
    expect((await lstat(keyfile)).mode & 0o777).toBe(0o600);
    expect(await readFile(keyfile, "utf8")).toMatch(
      /\[connection\]\nid=eth0\nuuid=[0-9a-f-]{36}\ntype=ethernet\ninterface-name=eth0\n\[ipv4\]\nmethod=manual\naddresses=198\.18\.7\.2\/24\ngateway=198\.18\.7\.1\n/,
    );
    // An AlmaLinux 9 root without any network program: ifcfg, and the problem named.
    const alma = await root("alma", {
      "etc/os-release": 'ID="almalinux"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.5"\n',
    });
    expect((await configure(alma)).problem).toMatch(/neither NetworkManager nor network-scripts/);
  });

  it("Gentoo openrc: /etc/conf.d/net and the net.eth0 link, as pct; the template must start it; systemd: networkd", async () => {
    const r = await root("gentoo", { "etc/os-release": "ID=gentoo\n", "etc/init.d/net.lo": "" });
    expect(await configure(r, OPENRC)).toMatchObject({
      family: "gentoo",
      problem: "net.eth0 is in no runlevel of the template: nothing starts it",
    });
    expect(await readFile(join(r, "etc/conf.d/net"), "utf8")).toBe(
      'config_eth0="198.18.7.2/24"\nroutes_eth0="default via 198.18.7.1"\n',
    );
    expect(await readlink(join(r, "etc/init.d/net.eth0"))).toBe("net.lo");
    await mkdir(join(r, "etc/runlevels/default"), { recursive: true });
    await symlink("/etc/init.d/net.eth0", join(r, "etc/runlevels/default/net.eth0"));
    expect((await configure(r, OPENRC)).problem).toBeUndefined();
    const sd = await root("gentoo-systemd", { "etc/os-release": "ID=gentoo\n" });
    expect(await configure(sd, SYSTEMD)).toMatchObject({ service: "systemd-networkd.service" });
  });

  it("the manifest's distro decides before os-release; an unknown distro is an error", async () => {
    const r = await root("unknown", { "etc/os-release": "ID=plan9\n" });
    expect(testFamilyFor("fedora", await readOsRelease(r)).name).toBe("rhel");
    expect(() => testFamilyFor(undefined, { ID: "plan9" })).toThrow(/unknown distro \(os-release ID=plan9\)/);
    expect(netmask(24)).toBe("255.255.255.0");
    expect(netmask(20)).toBe("255.255.240.0");
  });
});

describe("the init a template boots", () => {
  it("finds systemd through /sbin/init and refuses what this host cannot run", async () => {
    const r = await root("init-real", {});
    await mkdir(join(r, "usr/lib/systemd"), { recursive: true });
    await copyFile("/bin/true", join(r, "usr/lib/systemd/systemd"));
    await mkdir(join(r, "sbin"));
    await symlink("/usr/lib/systemd/systemd", join(r, "sbin/init"));
    expect(await detectInit(r)).toEqual({ kind: "systemd", path: "/usr/lib/systemd/systemd" });

    const script = await root("init-script", {});
    await mkdir(join(script, "usr/lib/systemd"), { recursive: true });
    await writeFile(join(script, "usr/lib/systemd/systemd"), "#!/bin/sh\n", { mode: 0o755 });
    await expect(detectInit(script)).rejects.toThrow(/systemd is a script, not a program/);

    const foreign = await root("init-foreign", {});
    const elf = Buffer.from(await readFile("/bin/true"));
    elf.writeUInt16LE(process.arch === "arm64" ? 62 : 183, 18);
    await mkdir(join(foreign, "sbin"), { recursive: true });
    await writeFile(join(foreign, "sbin/init"), elf, { mode: 0o755 });
    await expect(detectInit(foreign)).rejects.toThrow(/built for another CPU/);

    await expect(detectInit(await root("init-none", { "etc/hostname": "x\n" }))).rejects.toThrow(
      /no init system/,
    );
  });
});
