import { emptyDirInRoot, replaceFile } from "../../rootfs.js";
import {
  containerBaseline,
  inittabForContainers,
  removeRunLeftovers,
  systemdForContainers,
  truncateLogs,
} from "./common.js";
import type { ContainerPreset } from "./preset.js";

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
