import { emptyDirInRoot, existsInRoot, replaceFile } from "../../rootfs.js";
import {
  containerBaseline,
  inittabForContainers,
  removeRunLeftovers,
  systemdForContainers,
  truncateLogs,
} from "./common.js";
import type { ContainerPreset } from "./preset.js";

async function ifupdownInstalled(root: string): Promise<boolean> {
  return (await existsInRoot(root, "/sbin/ifup")) || (await existsInRoot(root, "/usr/sbin/ifup"));
}

/**
 * With ifupdown the container's network is /etc/network/interfaces (what vzctl and pct write),
 * but systemd's own 90-systemd.preset enables systemd-networkd when presets are applied at
 * first boot (pct create removes /etc/machine-id, so a Proxmox container's first start is
 * one): both would then manage eth0. A preset of our own says no first, as pve-container's
 * 00-pve.preset does on the host. It only matters for a first boot: nothing here enables
 * networkd in the template itself.
 */
async function networkdStaysOff(root: string): Promise<void> {
  await replaceFile(
    root,
    "/etc/systemd/system-preset/00-templar.preset",
    [
      "# templar: the network is ifupdown's (/etc/network/interfaces, written by vzctl and pct);",
      "# systemd-networkd must not manage the same interfaces when presets apply at first boot.",
      "disable systemd-networkd.service",
      "disable systemd-networkd.socket",
      "disable systemd-networkd-wait-online.service",
      "disable systemd-network-generator.service",
      "",
    ].join("\n"),
  );
}

/** Debian, Ubuntu, Devuan: systemd or sysvinit, ifupdown network config, apt caches. */
export const debianPreset: ContainerPreset = {
  name: "debian",
  async apply(root, log) {
    await containerBaseline(root);
    await replaceFile(root, "/etc/timezone", "Etc/UTC\n");
    await replaceFile(root, "/etc/default/locale", "LANG=C.UTF-8\n");
    // vzctl and pve-container add the container's interfaces to this file at creation.
    await replaceFile(
      root,
      "/etc/network/interfaces",
      "# The container manager (vzctl, pct) adds the container's interfaces here.\nauto lo\niface lo inet loopback\n",
    );
    const systemd = await systemdForContainers(root);
    if (systemd && (await ifupdownInstalled(root))) await networkdStaysOff(root);
    const sysv = await inittabForContainers(root);
    if (sysv) {
      // sysvinit: udev cannot run in a container.
      for (const level of ["S", "0", "1", "2", "3", "4", "5", "6"]) {
        await emptyDirInRoot(root, `/etc/rc${level}.d`, (name) => !/^[SK]\d\dudev$/.test(name));
      }
    }
    log(
      `container preset: ${[systemd && "systemd", sysv && "sysvinit"].filter(Boolean).join(" + ") || "no init found"}`,
    );
    // apt-get clean, and the indices (a container runs `apt update` before installing anyway).
    await emptyDirInRoot(root, "/var/cache/apt/archives", (name) => name === "partial" || name === "lock");
    await emptyDirInRoot(root, "/var/cache/apt/archives/partial", () => false);
    await emptyDirInRoot(root, "/var/cache/apt", (name) => !name.endsWith(".bin"));
    await emptyDirInRoot(root, "/var/lib/apt/lists", (name) => name === "partial" || name === "lock");
    for (const dir of ["/var/lib/dpkg", "/var/cache/debconf"]) {
      await emptyDirInRoot(root, dir, (name) => !name.endsWith("-old"));
    }
    await truncateLogs(root);
    await removeRunLeftovers(root);
  },
};
