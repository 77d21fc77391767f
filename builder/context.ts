import type { Recipe } from "./recipe/schema.js";

/** What sources and steps get while one template is built. */
export interface BuildContext {
  /** The rootfs directory being built (empty when the source starts). */
  root: string;
  recipe: Recipe;
  /** Package cache shared by every build on this host (--cache; default /var/cache/templar). */
  cacheDir: string;
  /** --mirror, else $TEMPLAR_DEBIAN_MIRROR (sources look further themselves, e.g. the host's apt sources). */
  mirror?: string;
  /** Where the host's apt configuration lives (default /etc/apt). */
  aptDir: string;
  /** The Debian security archive, when the user names one (else found from apt sources or the mirror). */
  securityMirror?: string | undefined;
  /** Force a Debian bootstrap tool (else mmdebstrap when installed, debootstrap otherwise). */
  bootstrapTool?: "mmdebstrap" | "debootstrap" | undefined;
  sourceDateEpoch?: number;
  /** Reuse and save root snapshots in the cache (builder/sources/snapshot.ts); default true. */
  snapshots?: boolean;
  /** Aborted on SIGINT/SIGTERM: every tool started must stop. */
  signal: AbortSignal;
  /** Progress notes and tool output lines. */
  log(line: string): void;
}
