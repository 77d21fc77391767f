import {
  emptyDirInRoot,
  existsInRoot,
  readFileInRoot,
  replaceFile,
  replaceSymlink,
  rewriteFileInRoot,
} from "../../rootfs.js";
import { containerBaseline, removeRunLeftovers, systemdForContainers, truncateLogs } from "./common.js";
import type { ContainerPreset } from "./preset.js";

/** openrc: `rc-update add SERVICE RUNLEVEL` as a plain symlink, without running anything. */
async function rcUpdateAdd(root: string, service: string, runlevel: string): Promise<void> {
  await replaceSymlink(root, `/etc/runlevels/${runlevel}/${service}`, `/etc/init.d/${service}`);
}

/** openrc's inittab: no gettys on tty1-6 (a container has no VTs); the console stays. */
async function inittabWithoutTtys(root: string): Promise<void> {
  const text = await readFileInRoot(root, "/etc/inittab", "utf8").catch(() => undefined);
  if (text === undefined) return;
  const lines = text.split("\n").map((line) => (/^[^#].*getty.*\btty[1-6]\b/.test(line) ? `#${line}` : line));
  await rewriteFileInRoot(root, "/etc/inittab", lines.join("\n"));
}

/**
 * Gentoo, openrc or systemd stage3. openrc: the network comes up through netifrc's `net.eth0`
 * (a symlink to net.lo) in the default runlevel, as in LXC's Gentoo images: pct writes eth0's
 * address into /etc/conf.d/net and links net.eth0 but starts nothing, so the template must.
 * vzctl with venet needs nothing from the template: its gentoo-add_ip.sh takes net.eth0 out
 * of the runlevel and adds net.venet0 itself (a net.venet0 in the template would fail at every
 * boot on hosts without venet0, as net.eth0 would there). sshd joins the default runlevel;
 * OpenRC is told it runs in an OpenVZ/LXC container (`rc_sys`), which skips hardware services.
 */
export const gentooPreset: ContainerPreset = {
  name: "gentoo",
  async apply(root, log) {
    await containerBaseline(root);
    await replaceFile(root, "/etc/timezone", "UTC\n");
    await replaceFile(root, "/etc/env.d/02locale", 'LANG="C.UTF-8"\n');
    const openrc =
      (await existsInRoot(root, "/sbin/openrc")) || (await existsInRoot(root, "/usr/sbin/openrc"));
    if (openrc) {
      if (await existsInRoot(root, "/etc/init.d/net.lo")) {
        await replaceSymlink(root, "/etc/init.d/net.eth0", "net.lo");
        await rcUpdateAdd(root, "net.eth0", "default");
      }
      if (await existsInRoot(root, "/etc/init.d/sshd")) await rcUpdateAdd(root, "sshd", "default");
      await replaceFile(
        root,
        "/etc/conf.d/net",
        "# The container manager (vzctl, pct) adds the container's interfaces here.\n",
      );
      const text = await readFileInRoot(root, "/etc/rc.conf", "utf8").catch(() => undefined);
      const rcSys = `${text ?? ""}${text?.endsWith("\n") || !text ? "" : "\n"}rc_sys="openvz"\n`;
      if (text === undefined) await replaceFile(root, "/etc/rc.conf", rcSys);
      else if (!/^rc_sys=/m.test(text)) await rewriteFileInRoot(root, "/etc/rc.conf", rcSys);
      await inittabWithoutTtys(root);
    }
    const systemd = await systemdForContainers(root);
    if (systemd && (await existsInRoot(root, "/usr/lib/systemd/system/sshd.service"))) {
      await replaceSymlink(
        root,
        "/etc/systemd/system/multi-user.target.wants/sshd.service",
        "/usr/lib/systemd/system/sshd.service",
      );
    }
    log(
      `container preset: ${[openrc && "openrc", systemd && "systemd"].filter(Boolean).join(" + ") || "no init found"}`,
    );
    // Downloaded sources and binary packages are build leftovers, not part of the template.
    for (const dir of ["/var/cache/distfiles", "/var/cache/binpkgs", "/var/tmp/portage"]) {
      await emptyDirInRoot(root, dir);
    }
    await truncateLogs(root);
    await removeRunLeftovers(root);
  },
};
