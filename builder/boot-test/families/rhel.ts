import { randomUUID } from "node:crypto";
import { existsInRoot, replaceFile } from "../../rootfs.js";
import { majorVersion, netmask, type PackageCheck, type TestFamily } from "./family.js";
import { writeNetworkdConfig } from "./networkd.js";

/**
 * Fedora, CentOS Stream and the other RHEL-likes, configured as pve-container does it:
 * Fedora (25 and later) with a systemd-networkd .network file; CentOS-likes 10 and later with a
 * NetworkManager keyfile (network-scripts were dropped there); older ones with an ifcfg file,
 * which NetworkManager's ifcfg-rh plugin or the legacy network service reads.
 */
export const rhelFamily: TestFamily = {
  name: "rhel",
  ids: ["fedora", "centos", "rhel", "almalinux", "rocky"],
  async configureNetwork(root, os, _init, net) {
    if (os.ID === "fedora") return writeNetworkdConfig(root, net);
    const nm = await existsInRoot(root, "/usr/sbin/NetworkManager");
    if (majorVersion(os) >= 10 || Number.isNaN(majorVersion(os))) {
      const path = `/etc/NetworkManager/system-connections/${net.iface}.nmconnection`;
      await replaceFile(
        root,
        path,
        [
          "[connection]",
          `id=${net.iface}`,
          `uuid=${randomUUID()}`,
          "type=ethernet",
          `interface-name=${net.iface}`,
          "[ipv4]",
          "method=manual",
          `addresses=${net.address}/${net.prefix}`,
          `gateway=${net.gateway}`,
          "[ipv6]",
          "method=disabled",
          "",
        ].join("\n"),
        0o600,
      );
      return {
        describe: `${path} (NetworkManager)`,
        service: "NetworkManager.service",
        problem: nm ? undefined : "the template has no NetworkManager",
      };
    }
    const path = `/etc/sysconfig/network-scripts/ifcfg-${net.iface}`;
    await replaceFile(
      root,
      path,
      [
        `DEVICE=${net.iface}`,
        "ONBOOT=yes",
        `UUID=${randomUUID()}`,
        "BOOTPROTO=none",
        `IPADDR=${net.address}`,
        `NETMASK=${netmask(net.prefix)}`,
        `GATEWAY=${net.gateway}`,
        "",
      ].join("\n"),
    );
    const scripts = await existsInRoot(root, "/etc/rc.d/init.d/network");
    return {
      describe: `${path} (${nm ? "NetworkManager" : "network-scripts"})`,
      service: nm ? "NetworkManager.service" : "network.service",
      problem:
        nm || scripts
          ? undefined
          : "the template has neither NetworkManager nor network-scripts to read ifcfg files",
    };
  },
  async packageCheck(root): Promise<PackageCheck | undefined> {
    if (!(await existsInRoot(root, "/usr/bin/rpm"))) return undefined;
    // The rpm database opens and every installed package's dependencies are met (no file
    // digests: the container preset changed configuration files on purpose).
    return { describe: "rpm -Va --nofiles", script: "rpm -qa >/dev/null && rpm -Va --nofiles" };
  },
};
