import { existsInRoot, replaceFile } from "../../rootfs.js";
import type { HostNetwork, StaticAddress } from "./family.js";

/**
 * A systemd-networkd `.network` file for the interface, as pve-container writes it for
 * distros whose containers use networkd (Fedora, newer Ubuntu): the template must have
 * networkd and have it enabled; the host only adds the file.
 */
export async function writeNetworkdConfig(root: string, net: StaticAddress): Promise<HostNetwork> {
  await replaceFile(
    root,
    `/etc/systemd/network/${net.iface}.network`,
    [
      "[Match]",
      `Name = ${net.iface}`,
      "",
      "[Network]",
      `Description = Interface ${net.iface} configured by the container host`,
      `Address = ${net.address}/${net.prefix}`,
      `Gateway = ${net.gateway}`,
      "DHCP = no",
      "IPv6AcceptRA = false",
      "",
    ].join("\n"),
  );
  const present =
    (await existsInRoot(root, "/usr/lib/systemd/systemd-networkd")) ||
    (await existsInRoot(root, "/lib/systemd/systemd-networkd"));
  return {
    describe: `/etc/systemd/network/${net.iface}.network (systemd-networkd)`,
    service: "systemd-networkd.service",
    problem: present ? undefined : "the template has no systemd-networkd",
  };
}
