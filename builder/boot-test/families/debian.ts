import { existsInRoot, readFileInRoot, replaceFile } from "../../rootfs.js";
import type { PackageCheck, StaticAddress, TestFamily } from "./family.js";
import { writeNetworkdConfig } from "./networkd.js";

/**
 * Debian and Devuan: the host appends a stanza to /etc/network/interfaces, as pve-container's
 * Debian setup and vzctl's debian scripts do, so the template needs ifupdown (and iproute2,
 * which ifupdown drives). Ubuntu from 17.10 on uses systemd-networkd (pve-container's Ubuntu
 * setup writes a .network file there).
 */
export const debianFamily: TestFamily = {
  name: "debian",
  ids: ["debian", "devuan", "ubuntu"],
  async configureNetwork(root, os, _init, net) {
    if (os.ID === "ubuntu" && Number.parseFloat(os.VERSION_ID ?? "0") >= 17.1)
      return writeNetworkdConfig(root, net);
    const path = "/etc/network/interfaces";
    const before = await readFileInRoot(root, path, "utf8").catch(() => "");
    await replaceFile(root, path, `${before}${before && !before.endsWith("\n") ? "\n" : ""}\n${stanza(net)}`);
    const ifup = (await existsInRoot(root, "/sbin/ifup")) || (await existsInRoot(root, "/usr/sbin/ifup"));
    return {
      describe: `${path} (ifupdown)`,
      service: "networking.service",
      problem: ifup
        ? undefined
        : "the template has no ifup (ifupdown): /etc/network/interfaces is never applied",
    };
  },
  async packageCheck(root): Promise<PackageCheck | undefined> {
    if (!(await existsInRoot(root, "/usr/bin/apt-get"))) return undefined;
    return {
      describe: "apt-get check, dpkg --audit",
      // dpkg --audit lists half-installed or unconfigured packages; it must list none.
      script:
        'apt-get -q check >/dev/null || exit 1; out=$(dpkg --audit) || exit 1; [ -z "$out" ] || { echo "$out"; exit 1; }',
    };
  },
};

/** pve-container's stanza for a static IPv4 address (CIDR notation, Debian 10 and later). */
function stanza(net: StaticAddress): string {
  return `auto ${net.iface}\niface ${net.iface} inet static\n\taddress ${net.address}/${net.prefix}\n\tgateway ${net.gateway}\n`;
}
