import type { HostChannel } from "./channel.js";
import { lxcDownload } from "./lxc-download.js";
import { oci } from "./oci/index.js";
import { openvz } from "./openvz.js";
import { proxmox } from "./proxmox.js";
import { simplestreams } from "./simplestreams.js";

/** The ONE table of host channels: a new kind of host adds one row here. */
export const hostChannels: readonly HostChannel[] = [openvz, proxmox, oci, lxcDownload, simplestreams];
