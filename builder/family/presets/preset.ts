/**
 * The `preset: container` step for one distro family: makes a rootfs ready for OpenVZ/Proxmox
 * (the OpenVZ wiki's checklist, as DAB, vzctl and pve-container apply it). Registered per family in builder/family/index.ts; the shared parts live
 * in ./common.ts. Runs no program inside the root: plain file edits, so it works for any arch.
 */
export interface ContainerPreset {
  name: string;
  apply(root: string, log: (line: string) => void): Promise<void>;
}
