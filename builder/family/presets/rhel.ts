import {
  emptyDirInRoot,
  existsInRoot,
  readFileInRoot,
  removeInRoot,
  replaceFile,
  replaceSymlink,
} from "../../rootfs.js";
import { containerBaseline, removeRunLeftovers, systemdForContainers, truncateLogs } from "./common.js";
import type { ContainerPreset } from "./preset.js";

/**
 * pct configures a Fedora container's network with a systemd-networkd .network file (and
 * enables networkd only through a first-boot preset). Fedora's own presets leave networkd
 * disabled, so where the template has it, it is enabled here (and preset so): without it the
 * host's configuration is never applied.
 */
async function networkdForFedora(root: string, log: (line: string) => void): Promise<void> {
  const osRelease =
    (await readFileInRoot(root, "/usr/lib/os-release", "utf8").catch(() => "")) ||
    (await readFileInRoot(root, "/etc/os-release", "utf8").catch(() => ""));
  if (!/^ID="?fedora"?$/m.test(osRelease)) return;
  const unit = "/usr/lib/systemd/system/systemd-networkd.service";
  if (!(await existsInRoot(root, unit))) return;
  await replaceSymlink(root, "/etc/systemd/system/multi-user.target.wants/systemd-networkd.service", unit);
  await replaceSymlink(
    root,
    "/etc/systemd/system/sockets.target.wants/systemd-networkd.socket",
    "/usr/lib/systemd/system/systemd-networkd.socket",
  );
  await replaceFile(
    root,
    "/etc/systemd/system-preset/00-templar.preset",
    [
      "# templar: the container's network is systemd-networkd's (pct writes a .network file).",
      "enable systemd-networkd.service",
      "enable systemd-networkd.socket",
      "",
    ].join("\n"),
  );
  log("container preset: systemd-networkd enabled (pct configures Fedora's network through it)");
}

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
    if (systemd) await networkdForFedora(root, log);
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
