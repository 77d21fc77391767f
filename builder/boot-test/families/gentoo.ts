import { existsInRoot, replaceFile, replaceSymlink } from "../../rootfs.js";
import type { PackageCheck, TestFamily } from "./family.js";
import { writeNetworkdConfig } from "./networkd.js";

/**
 * Gentoo. openrc: netifrc's /etc/conf.d/net with the interface's address and default route,
 * and the `net.eth0 -> net.lo` service, as pve-container sets them up; starting net.eth0 (a
 * runlevel) is left to the template, as pct leaves it. systemd: a systemd-networkd .network
 * file, since netifrc is openrc's.
 */
export const gentooFamily: TestFamily = {
  name: "gentoo",
  ids: ["gentoo"],
  async configureNetwork(root, _os, init, net) {
    if (init.kind === "systemd") return writeNetworkdConfig(root, net);
    await replaceFile(
      root,
      "/etc/conf.d/net",
      `config_${net.iface}="${net.address}/${net.prefix}"\nroutes_${net.iface}="default via ${net.gateway}"\n`,
    );
    const netifrc = await existsInRoot(root, "/etc/init.d/net.lo");
    await replaceSymlink(root, `/etc/init.d/net.${net.iface}`, "net.lo");
    const service = `net.${net.iface}`;
    const started =
      (await existsInRoot(root, `/etc/runlevels/default/${service}`)) ||
      (await existsInRoot(root, `/etc/runlevels/boot/${service}`));
    return {
      describe: `/etc/conf.d/net, ${service} (netifrc)`,
      problem: !netifrc
        ? "the template has no netifrc (/etc/init.d/net.lo)"
        : started
          ? undefined
          : `${service} is in no runlevel of the template: nothing starts it`,
    };
  },
  async packageCheck(root): Promise<PackageCheck | undefined> {
    if (!(await existsInRoot(root, "/usr/bin/portageq"))) return undefined;
    // Portage loads its configuration and opens the installed-package database (offline).
    return { describe: "portageq vdb_path", script: "portageq vdb_path >/dev/null" };
  },
};
