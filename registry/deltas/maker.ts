import { createReadStream } from "node:fs";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { codecFilter, spawnFilter, writeNewFile } from "../../common/compression/filters.js";
import { DELTA_ALGORITHM, type DeltaEntry, type DeltaIndex, patchWindowLog } from "../../common/delta.js";
import { parseDigest } from "../../common/digest.js";
import { errorMessage } from "../../common/errors.js";
import type { Format } from "../../common/formats.js";
import type { Manifest } from "../../common/manifest.js";
import type { Store } from "../store/store.js";

/** The registry config's `deltas:` section, as the maker uses it. */
export interface DeltaSettings {
  /** Patches from this many previous versions (0: no deltas). */
  previous: number;
  /** zstd level for the patches (1-22). */
  level: number;
  /** Versions whose tars need a larger window get no delta (hosts would refuse it anyway). */
  maxWindowLog: number;
  /** Where the tars are unpacked while a patch is made (default: the system's temp folder). */
  workDir?: string | undefined;
}

/** The fastest artifact to decompress first. */
const SOURCE_ORDER: Format[] = ["tar.zst", "tar.gz", "tar.xz"];

/**
 * Makes the delta patches of a version in the background of `templar serve`: after a push is
 * acknowledged (and, should a process die before finishing, the first time a host asks for the
 * version's deltas), one job at a time per process, reading and writing only through the store.
 * For each of the `previous` older versions of the same template (the name carries the arch),
 * it unpacks both tars to a work folder, runs `zstd --patch-from=<old tar> --long=<window>`,
 * stores the patch as a blob and lists it in the version's delta index. Patches no smaller than
 * the smallest full artifact are not kept. Several replicas may make the same index: the patches
 * are content-addressed and the index is replaced whole, so the last one written stands.
 */
export class DeltaMaker {
  private queue: { name: string; version: string }[] = [];
  private queued = new Set<string>();
  private running: Promise<void> | null = null;

  constructor(
    private readonly store: Store,
    private readonly settings: () => Promise<DeltaSettings>,
    private readonly log: (entry: Record<string, unknown>) => void,
  ) {}

  /** Queues making `name@version`'s delta index (once, however often asked). */
  schedule(name: string, version: string): void {
    const id = `${name}@${version}`;
    if (this.queued.has(id)) return;
    this.queued.add(id);
    this.queue.push({ name, version });
    this.running ??= this.drain().finally(() => {
      this.running = null;
    });
  }

  /** Drops what is queued and waits for the job in progress (shutdown). */
  async stop(): Promise<void> {
    this.queue = [];
    await this.idle();
  }

  /** Resolves when the queue is empty (tests). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private async drain(): Promise<void> {
    for (let job = this.queue.shift(); job; job = this.queue.shift()) {
      const started = Date.now();
      try {
        const index = await this.make(job.name, job.version);
        if (index)
          this.log({
            event: "deltas",
            name: job.name,
            version: job.version,
            deltas: index.deltas.map((d) => ({ from: d.fromVersion, size: d.size })),
            ms: Date.now() - started,
          });
      } catch (err) {
        this.log({ event: "deltas-failed", name: job.name, version: job.version, error: errorMessage(err) });
      } finally {
        this.queued.delete(`${job.name}@${job.version}`);
      }
    }
  }

  /** Makes and stores the delta index of `name@version`; null when the version is gone. */
  async make(name: string, version: string): Promise<DeltaIndex | null> {
    const settings = await this.settings();
    const manifest = await this.store.manifests.manifest(name, version);
    if (!manifest) return null;
    const list = await this.store.versions.list(name);
    const at = list.entries.findIndex((e) => e.version.version === version);
    // Newest first: the ones after this version are older.
    const older = at < 0 ? [] : list.entries.slice(at + 1, at + 1 + settings.previous);
    const index: DeltaIndex = {
      schemaVersion: 1,
      name,
      version,
      tarSha256: manifest.rootfs.tarSha256,
      deltas: [],
    };
    const work = await mkdtemp(join(settings.workDir ?? tmpdir(), "templar-delta-"));
    try {
      let newTar: string | null = null;
      const smallest = Math.min(...manifest.artifacts.map((a) => a.size));
      for (const entry of older) {
        const from = await this.store.manifests.manifest(name, entry.version.version);
        if (!from || from.rootfs.tarSha256 === manifest.rootfs.tarSha256) continue;
        const windowLog = patchWindowLog(from.rootfs.tarSize, manifest.rootfs.tarSize);
        if (windowLog > settings.maxWindowLog) {
          this.log({
            event: "delta-skipped",
            name,
            version,
            from: from.version,
            why: `needs window 2^${windowLog}`,
          });
          continue;
        }
        newTar ??= await this.unpack(manifest, join(work, "new.tar"));
        const oldTar = await this.unpack(from, join(work, `${from.version}.tar`));
        const patch = join(work, `${from.version}.patch.zst`);
        const zstd = spawnFilter(
          "zstd",
          [
            "-q",
            ...(settings.level > 19 ? ["--ultra"] : []),
            `-${settings.level}`,
            `--long=${windowLog}`,
            `--patch-from=${oldTar}`,
            "-c",
            newTar,
          ],
          null,
          `delta ${name} ${from.version} -> ${version}`,
          { largeBuffers: true },
        );
        const written = await writeNewFile(zstd.output, patch, [zstd.done]);
        await rm(oldTar, { force: true });
        if (written.size >= smallest) {
          await rm(patch, { force: true });
          continue;
        }
        await this.store.blobs.put(written.hex, createReadStream(patch));
        await rm(patch, { force: true });
        const delta: DeltaEntry = {
          algorithm: DELTA_ALGORITHM,
          fromVersion: from.version,
          fromTarSha256: from.rootfs.tarSha256,
          digest: `sha256:${written.hex}`,
          size: written.size,
          windowLog,
        };
        index.deltas.push(delta);
      }
      // Written only while the version still exists: a DELETE meanwhile leaves no index behind
      // (GC would drop it anyway).
      if (!(await this.store.manifests.exists(name, version))) return null;
      await this.store.deltas.put(index);
      return index;
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }

  /** Unpacks a version's tar from its quickest artifact into `path`, checked against its tarSha256. */
  private async unpack(manifest: Manifest, path: string): Promise<string> {
    const what = `${manifest.name}@${manifest.version}`;
    const artifact = SOURCE_ORDER.map((format) => {
      const found = manifest.artifacts.find((a) => a.format === format);
      return found ? { ...found, format } : undefined;
    }).find(Boolean);
    if (!artifact) throw new Error(`${what} has no tar artifact`);
    const stream: Readable | null = await this.store.blobs.read(parseDigest(artifact.digest)!);
    if (!stream) throw new Error(`${what}: its ${artifact.format} blob is missing`);
    const filter = await codecFilter(artifact.format, "decompress", stream, `unpack ${what}`);
    const written = await writeNewFile(filter.output, path, [filter.done]);
    if (written.hex !== manifest.rootfs.tarSha256)
      throw new Error(
        `${what}: its ${artifact.format} unpacks to sha256:${written.hex}, not the manifest's tar`,
      );
    if ((await stat(path)).size !== manifest.rootfs.tarSize)
      throw new Error(`${what}: its tar has another size than the manifest says`);
    return path;
  }
}
