import { z } from "zod";
import { writeFileAtomic } from "../../common/atomic.js";
import { FORMATS, type Format } from "../../common/formats.js";
import { cacheFile, readStateFile } from "./cache.js";

/**
 * Whether an update goes through a delta patch. A patch saves bytes, not always time: the host
 * must unpack the cached file, apply the patch and compress the whole tar again, CPU work in
 * proportion to the tar's size, while a full download costs the artifact's size over the
 * link. `auto` takes the patch only when rebuilding is expected to finish before a full
 * download would: the link's speed is the last full download's from that registry into this
 * cache, or, before there was one, the patch's own (downloaded, then left if the full artifact
 * wins); the rebuild speed is this host's last, or a first estimate. `always` uses any patch,
 * `never` none.
 */
export const DELTA_MODES = ["auto", "always", "never"] as const;
export type DeltaMode = (typeof DELTA_MODES)[number];

export function parseDeltaMode(text: string): DeltaMode | null {
  return (DELTA_MODES as readonly string[]).includes(text) ? (text as DeltaMode) : null;
}

/**
 * How fast a host rebuilds a template from a patch (bytes of tar per second: unpack, apply,
 * compress, verify) before it has measured itself, as measured on a 2-core host with the
 * builder's compressors (README "Delta updates"): a 195.5 MiB Debian tar took 1.1-1.4 s with
 * zstd -3 -T0, 5.0 s with pigz -6 and 48 s with xz -6 -T0. After its first delta a host uses
 * its own figure.
 */
export const FIRST_REBUILD_ESTIMATE: Record<Format, number> = {
  "tar.zst": 150e6,
  "tar.gz": 40e6,
  "tar.xz": 4e6,
};

/**
 * The state file that keeps what this host measured: how fast it rebuilt a template from a
 * patch (per format) and how fast full downloads came from each registry.
 */
const SPEED_FILE = "speeds.json";

/** Downloads smaller than this say more about round trips than about the link. */
const MIN_MEASURED_DOWNLOAD = 4 << 20;

const SpeedsSchema = z.looseObject({
  schemaVersion: z.literal(1),
  /** Bytes of tar rebuilt per second, the last time this host applied a patch for the format. */
  rebuild: z.partialRecord(z.enum(FORMATS), z.number().positive().finite()),
  /** Bytes per second of the last full download from each registry (by its URL). */
  download: z.record(z.string(), z.number().positive().finite()),
});
type Speeds = z.infer<typeof SpeedsSchema>;

async function readSpeeds(dest: string): Promise<Speeds> {
  const bytes = await readStateFile(cacheFile(dest, SPEED_FILE, "state"));
  if (bytes) {
    try {
      return SpeedsSchema.parse(JSON.parse(bytes.toString("utf8")));
    } catch {
      // An unreadable record is as good as none: estimates stand in until the next measurement.
    }
  }
  return { schemaVersion: 1, rebuild: {}, download: {} };
}

/** Keeps one measurement (the state folder exists: a pull is under way). Best effort. */
async function recordSpeed(dest: string, change: (speeds: Speeds) => void): Promise<void> {
  const speeds = await readSpeeds(dest);
  change(speeds);
  await writeFileAtomic(cacheFile(dest, SPEED_FILE, "state"), `${JSON.stringify(speeds, null, 2)}\n`).catch(
    () => {},
  );
}

/**
 * What this host knows for one update: its rebuild speed for `format` (its last, or the first
 * estimate) and the speed of its last full download from `registry`, if one was measured.
 */
export async function hostSpeeds(
  dest: string,
  format: Format,
  registry: string,
): Promise<{ rebuild: { bytesPerSecond: number; measured: boolean }; link: number | null }> {
  const speeds = await readSpeeds(dest);
  const own = speeds.rebuild[format];
  return {
    rebuild: own
      ? { bytesPerSecond: own, measured: true }
      : { bytesPerSecond: FIRST_REBUILD_ESTIMATE[format], measured: false },
    link: speeds.download[registry] ?? null,
  };
}

export function recordRebuildSpeed(dest: string, format: Format, bytesPerSecond: number): Promise<void> {
  return recordSpeed(dest, (speeds) => {
    speeds.rebuild[format] = bytesPerSecond;
  });
}

/** After a full download of `bytes` at `bytesPerSecond`: kept when large enough to tell. */
export function recordLinkSpeed(
  dest: string,
  registry: string,
  bytes: number,
  bytesPerSecond: number,
): Promise<void> {
  if (bytes < MIN_MEASURED_DOWNLOAD || !Number.isFinite(bytesPerSecond) || bytesPerSecond <= 0)
    return Promise.resolve();
  return recordSpeed(dest, (speeds) => {
    speeds.download[registry] = bytesPerSecond;
  });
}

export interface RouteCosts {
  /** Seconds to rebuild the template from a patch (unpack, apply, compress, verify). */
  rebuild: number;
  /** Seconds the full artifact takes over the link. */
  download: number;
}

/** The two ways to the new version, in seconds (the patch's own download left aside: a few percent). */
export function routeCosts(input: {
  tarSize: number;
  artifactSize: number;
  linkBytesPerSecond: number;
  rebuildBytesPerSecond: number;
}): RouteCosts {
  return {
    rebuild: input.tarSize / input.rebuildBytesPerSecond,
    download: input.artifactSize / input.linkBytesPerSecond,
  };
}

/**
 * The link's speed as a download shows it: from its first bytes to its last, so the request's
 * round trip does not count (on a patch of a few MiB it would halve the figure on a fast link).
 * A download too small to tell (one chunk) is timed whole, from `started`.
 */
export function linkMeter(started: number, size: number) {
  let first: { at: number; bytes: number } | null = null;
  let last: { at: number; bytes: number } | null = null;
  return {
    seen(received: number) {
      const at = performance.now();
      first ??= { at, bytes: received };
      last = { at, bytes: received };
    },
    /** Bytes seen between the first and the last progress report. */
    bytes(): number {
      return first && last ? last.bytes - first.bytes : 0;
    },
    bytesPerSecond(): number {
      if (first && last && last.at - first.at >= 1 && last.bytes > first.bytes)
        return ((last.bytes - first.bytes) * 1000) / (last.at - first.at);
      // A patch that came in no measurable time says the link is as fast as this host can tell.
      return (size * 1000) / Math.max(performance.now() - started, 0.1);
    },
  };
}
