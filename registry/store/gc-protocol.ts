import { randomBytes } from "node:crypto";
import type { StorageDriver } from "../storage/driver.js";
import { layout } from "./layout.js";

/**
 * What a GC run and a manifest publisher (a PUT, a mirror into storage) agree on in storage, so
 * that GC never deletes a blob an acknowledged manifest names (the argument is in gc.ts):
 *
 *   gc/runs/<run id>      "<ms>": a running GC's heartbeat, rewritten every HEARTBEAT_MS
 *   gc/pending/<hex>      "<ms> <run id>": that run means to delete this blob (its mark)
 *   gc/pins/<request id>  "<ms>\n<hex>\n...": a publisher is about to name these blobs
 *
 * A mark counts only while its run's heartbeat is younger than RUN_TIMEOUT_MS, so a crashed run
 * blocks pushes for seconds, not for ever. Times are the writer's clock read by another process:
 * the replicas' clocks must agree to well within RUN_TIMEOUT_MS / 2 (NTP gives milliseconds).
 */
export const RUN_TIMEOUT_MS = 30_000;
export const HEARTBEAT_MS = 5_000;
/**
 * A pin older than this is a crashed publisher's: GC ignores and removes it. A publisher that
 * took half of it between its pin and its write gives up instead (publish.ts).
 */
export const PIN_TTL_MS = 10 * 60_000;

/** Whether the run's heartbeat is fresh: a missing or stale one is a finished or dead run. */
export async function runAlive(storage: StorageDriver, runId: string, now = Date.now()): Promise<boolean> {
  const at = Number((await storage.get(layout.gcRun(runId)))?.toString("utf8"));
  return Number.isFinite(at) && at > 0 && now - at < RUN_TIMEOUT_MS;
}

/** The run that wrote a mark ("<ms> <run id>"); null for a mark in any other form (dead). */
function markRun(mark: Buffer | null): string | null {
  const [at, runId] = mark?.toString("utf8").split(" ") ?? [];
  return at && runId && Number.isFinite(Number(at)) ? runId : null;
}

/** Whether a live GC run has marked this blob for deletion. */
export async function markedByLiveRun(storage: StorageDriver, hex: string): Promise<boolean> {
  const runId = markRun(await storage.get(layout.gcMark(hex)));
  return runId !== null && (await runAlive(storage, runId));
}

/** Writes a pin for `blobs`, unique to this publisher; returns its key and time. */
export async function pinBlobs(
  storage: StorageDriver,
  blobs: string[],
): Promise<{ key: string; at: number }> {
  const at = Date.now();
  const key = layout.gcPin(randomBytes(12).toString("hex"));
  await storage.put(key, Buffer.from([String(at), ...blobs].join("\n")));
  return { key, at };
}

/** Every blob a fresh pin names (older pins are crashed publishers': removeLeftovers). */
export async function pinnedBlobs(storage: StorageDriver): Promise<Set<string>> {
  const pinned = new Set<string>();
  for await (const obj of storage.list(layout.gcPins)) {
    const pin = await readPin(storage, obj.key);
    if (pin && Date.now() - pin.at < PIN_TTL_MS) for (const hex of pin.blobs) pinned.add(hex);
  }
  return pinned;
}

/** null when the pin is gone: its publisher finished (its manifest, if any, exists by then). */
async function readPin(storage: StorageDriver, key: string): Promise<{ at: number; blobs: string[] } | null> {
  const bytes = await storage.get(key);
  if (!bytes) return null;
  const [at, ...blobs] = bytes.toString("utf8").split("\n");
  return { at: Number(at), blobs };
}

/**
 * Removes what crashed processes left: marks of runs that are not alive, then stale run
 * records (after the marks, so a dead run's marks never outlive its record), and pins older
 * than PIN_TTL_MS (or unreadable: only pinBlobs writes them, whole).
 */
export async function removeLeftovers(storage: StorageDriver): Promise<void> {
  const alive = new Map<string, boolean>();
  const isAlive = async (runId: string) => {
    if (!alive.has(runId)) alive.set(runId, await runAlive(storage, runId));
    return alive.get(runId)!;
  };
  for await (const obj of storage.list(layout.gcMarks)) {
    const runId = markRun(await storage.get(obj.key));
    if (runId === null || !(await isAlive(runId))) await storage.delete(obj.key);
  }
  for await (const obj of storage.list(layout.gcRuns)) {
    if (!(await isAlive(obj.key.slice(layout.gcRuns.length)))) await storage.delete(obj.key);
  }
  for await (const obj of storage.list(layout.gcPins)) {
    const pin = await readPin(storage, obj.key);
    if (pin && !(Date.now() - pin.at < PIN_TTL_MS)) await storage.delete(obj.key);
  }
}

/**
 * One GC run's lease: its record in storage, rewritten every heartbeat. Publishers honour its
 * marks while the record is younger than RUN_TIMEOUT_MS (by their clock), so the run may delete
 * only while its last successful heartbeat is younger than half that, and never again once it
 * was older (publishers may have ignored its marks meanwhile, even if heartbeats resume).
 */
export class GcRun {
  readonly id = `run-${randomBytes(12).toString("hex")}`;
  private lastBeat = 0;
  private lapsed = false;
  private timer: NodeJS.Timeout | undefined;
  private beating: Promise<void> | null = null;
  private readonly limitMs: number;

  /** `timeoutMs`, `heartbeatMs`: shorter than the defaults for tests (longer is clamped: unsafe). */
  constructor(
    private readonly storage: StorageDriver,
    timeoutMs = RUN_TIMEOUT_MS,
    private readonly heartbeatMs = HEARTBEAT_MS,
  ) {
    this.limitMs = Math.min(timeoutMs, RUN_TIMEOUT_MS) / 2;
  }

  /** Writes the first heartbeat (marks must never exist without a record) and keeps beating. */
  async start(): Promise<void> {
    await this.beat();
    if (!this.lastBeat) throw new Error("gc: cannot write its run record to storage");
    this.timer = setInterval(() => void this.beat(), Math.min(this.heartbeatMs, this.limitMs / 3));
    this.timer.unref();
  }

  /** The mark content: when, and which run (publishers look the run up). */
  mark(): Buffer {
    return Buffer.from(`${Date.now()} ${this.id}`);
  }

  /** Whether deleting is still safe: every publisher still honours this run's marks. */
  mayDelete(): boolean {
    if (Date.now() - this.lastBeat >= this.limitMs) this.lapsed = true;
    return !this.lapsed;
  }

  async end(): Promise<void> {
    clearInterval(this.timer);
    await this.beating;
    await this.storage.delete(layout.gcRun(this.id));
  }

  private beat(): Promise<void> {
    if (this.beating) return this.beating; // a slow write: the lapse check catches it
    const at = Date.now();
    if (this.lastBeat && !this.mayDelete()) return Promise.resolve(); // lapsed for good
    this.beating = this.storage
      .put(layout.gcRun(this.id), Buffer.from(String(at)))
      .then(
        () => {
          this.lastBeat = at;
        },
        () => {}, // the lapse check stops deletions if this goes on
      )
      .finally(() => {
        this.beating = null;
      });
    return this.beating;
  }
}
