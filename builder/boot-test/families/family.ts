import type { InitInfo, OsRelease } from "../root.js";

/** The interface a host configures and the static address it gives it (pct's `ip=…,gw=…`). */
export interface StaticAddress {
  /** Inside the container: eth0, as pct and vzctl name a veth interface. */
  iface: string;
  /** The container's address, e.g. 198.18.7.2. */
  address: string;
  prefix: number;
  /** The host end of the veth pair, given as the gateway. */
  gateway: string;
}

/** What the host wrote into the root for the network, and what will not work (known before boot). */
export interface HostNetwork {
  /** e.g. "/etc/network/interfaces (ifupdown)". */
  describe: string;
  /** Why the interface cannot come up, e.g. "the template has no ifup (ifupdown)". */
  problem?: string;
  /** The systemd unit that applies this configuration; no other network manager may run. */
  service?: string;
}

/** The template's offline package-manager self-check: a shell script run inside the container. */
export interface PackageCheck {
  describe: string;
  script: string;
}

/**
 * A distro family as a container host sees it: how the host writes a static address for the
 * container's interface into the root before the first start (pct's and vzctl's per-distro
 * setup), and how the package manager checks itself. Registered in ./index.ts.
 */
export interface TestFamily {
  name: string;
  /** os-release `ID` (or `ID_LIKE`) values of this family. */
  ids: string[];
  configureNetwork(root: string, os: OsRelease, init: InitInfo, net: StaticAddress): Promise<HostNetwork>;
  packageCheck(root: string): Promise<PackageCheck | undefined>;
}

/** The major version from os-release's VERSION_ID ("9", "10.1", "43"), NaN when absent. */
export function majorVersion(os: OsRelease): number {
  return Number.parseInt(os.VERSION_ID ?? "", 10);
}

/** Dotted netmask for a prefix length (ifcfg's NETMASK=). */
export function netmask(prefix: number): string {
  const bits = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return [24, 16, 8, 0].map((shift) => (bits >>> shift) & 0xff).join(".");
}
