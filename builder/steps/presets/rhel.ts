import { emptyDirInRoot, existsInRoot, removeInRoot, replaceFile } from "../../rootfs.js";
import { containerBaseline, removeRunLeftovers, systemdForContainers, truncateLogs } from "./common.js";
import type { ContainerPreset } from "./preset.js";

/**
 * Fedora, CentOS Stream and other RHEL-likes: systemd, dnf, network-scripts or NetworkManager.
 * vzctl's redhat scripts and pve-container write the container's interface config
 * (ifcfg-venet0/eth0 or a NetworkManager keyfile) at creation, so only loopback is left here.
 */
export const rhelPreset: ContainerPreset = {
  name: "rhel",
  async apply(root, log) {
    await containerBaseline(root);
    await replaceFile(root, "/etc/locale.conf", "LANG=C.UTF-8\n");
    await replaceFile(root, "/etc/sysconfig/network", "NETWORKING=yes\nHOSTNAME=localhost\n");
    await emptyDirInRoot(
      root,
      "/etc/sysconfig/network-scripts",
      (name) => !/^ifcfg-/.test(name) || name === "ifcfg-lo",
    );
    await emptyDirInRoot(root, "/etc/NetworkManager/system-connections");
    const systemd = await systemdForContainers(root);
    // The image may run without systemd (the container base images have none): then the
    // template's own packages step installs it and this preset runs again after it.
    log(`container preset: ${systemd ? "systemd" : "no init found (install systemd in a packages step)"}`);
    // `dnf clean all`: metadata, packages and the dnf/yum caches (a container refreshes them).
    for (const dir of ["/var/cache/dnf", "/var/cache/yum", "/var/cache/libdnf5"]) {
      if (await existsInRoot(root, dir)) await emptyDirInRoot(root, dir);
    }
    await removeInRoot(root, "/var/lib/rpm/__db.001");
    await truncateLogs(root);
    await removeRunLeftovers(root);
  },
};
