import { createHash, randomBytes } from "node:crypto";
import { createApp } from "../../registry/app.js";
import { createDeps } from "../../registry/server.js";
import type { StorageDriver } from "../../registry/storage/driver.js";
import { bearer, makeTemplate, sha256, type TemplateFixture } from "./registry.js";
import { gcOn, storeOf } from "./store.js";

export interface SoakOptions {
  /** One registry and one GC loop per storage: replicas of one data set. */
  replicas: StorageDriver[];
  configPath: string;
  /** A token with push scope. */
  token: string;
  /**
   * Pushes go on this long, and then until `minAcknowledged` and until a GC run's marks met a
   * PUT at least `minGcInProgress` times (how often that happens depends on how long GC runs
   * take on a loaded machine), for at most `maxMs` in all.
   */
  durationMs: number;
  minAcknowledged: number;
  minGcInProgress?: number;
  maxMs: number;
  /** Per round: templates pushed by several identical pushers at once, and by one pusher each. */
  shared: number;
  identical: number;
  distinct: number;
  /** Independent sequences of rounds running at once. */
  lanes: number;
  /** Manifests go up to this long after their blobs (or 1.5 GC runs, if longer). */
  putDelayMs: number;
  label: string;
}

export interface SoakResult {
  /** 2xx answers to manifest PUTs, and how many distinct acknowledged versions were checked. */
  acknowledged: number;
  versions: number;
  /** Acknowledged versions whose manifest or a blob is missing or wrong afterwards. */
  lost: string[];
  /** 409 VERSION_EXISTS for bytes identical to what was pushed (a vanishing object misread). */
  false409: number;
  /** Anything else unexpected: GC runs that failed, pushes that never got through. */
  failures: string[];
  gcRuns: number;
  gcDeleted: number;
  /** Manifest PUTs answered 503 GC_IN_PROGRESS or 400 BLOB_UNKNOWN (retried). */
  backedOff: { gcInProgress: number; blobUnknown: number };
}

/**
 * GC with no grace period in a loop on every replica while rounds of pushes go on (several
 * identical pushers of one version at once, and single pushers of other versions sharing a
 * blob), then one more GC, then every acknowledged manifest and each blob it names is read back.
 */
export async function gcSoak(o: SoakOptions): Promise<SoakResult> {
  const apps = await Promise.all(
    o.replicas.map(async (storage) =>
      createApp(await createDeps({ storage, configPath: o.configPath, log: () => {} })),
    ),
  );
  const result: SoakResult = {
    acknowledged: 0,
    versions: 0,
    lost: [],
    false409: 0,
    failures: [],
    gcRuns: 0,
    gcDeleted: 0,
    backedOff: { gcInProgress: 0, blobUnknown: 0 },
  };
  let stop = false;
  let gcMs = 300; // a GC run's recent duration: manifests wait about that long (see below)
  const gc = async (storage: StorageDriver) => {
    const report = await gcOn(storage, { graceMs: 0, uploadExpiryMs: 3_600_000 });
    result.gcRuns++;
    result.gcDeleted += report.deleted;
    gcMs = 0.8 * gcMs + 0.2 * report.ms;
  };
  const loops = o.replicas.map(async (storage) => {
    while (!stop) await gc(storage).catch((err: Error) => result.failures.push(`gc: ${err.message}`));
  });

  // Every pusher of a version sends its manifest at the same moment, a while after its blobs:
  // the blobs sit unreferenced meanwhile (large uploads, slow clients), so GC runs mark them
  // while the identical PUTs race each other. The wait follows how long GC runs take (a loaded
  // machine, a slow bucket), else the marks would come after the manifests.
  const putAt = () => Date.now() + Math.random() * Math.max(o.putDelayMs, 1.5 * gcMs);
  // The first pusher of a version retries until it is accepted; the others give up at their
  // first refusal (a client stopped, a CI job cancelled), so none of them repairs what another
  // request broke.
  const push = async (
    t: TemplateFixture,
    acked: Map<string, TemplateFixture>,
    putAt: number,
    retries = true,
  ) => {
    // A GC run on a loaded machine (RGW on two busy cores) can hold its marks for many seconds,
    // and the loops start the next run at once: a pusher waits as a client honouring Retry-After
    // would, for up to a minute, before its failure counts.
    const giveUp = Math.max(putAt, Date.now()) + 60_000;
    for (let attempt = 0; attempt === 0 || Date.now() < giveUp; attempt++) {
      const app = apps[Math.floor(Math.random() * apps.length)]!;
      for (const blob of t.blobs) {
        const up = await app.request(`/v1/blobs/sha256:${sha256(blob)}`, {
          method: "PUT",
          headers: bearer(o.token),
          body: blob,
        });
        if (up.status !== 201 && up.status !== 200) {
          result.failures.push(`blob upload: ${up.status} ${await up.text()}`);
          return;
        }
      }
      if (attempt === 0) await new Promise((r) => setTimeout(r, putAt - Date.now()));
      const res = await app.request(`/v1/templates/${t.name}/${t.version}`, {
        method: "PUT",
        headers: bearer(o.token),
        body: t.manifest,
      });
      const text = await res.text();
      if (res.status === 200 || res.status === 201) {
        result.acknowledged++;
        acked.set(`${t.name}@${t.version}`, t);
        return;
      }
      if (res.status === 409) {
        result.false409++;
        return;
      }
      // GC took the blob (BLOB_UNKNOWN) or has it marked (GC_IN_PROGRESS): upload again, retry.
      if (res.status !== 400 && res.status !== 503) {
        result.failures.push(`manifest PUT: ${res.status} ${text}`);
        return;
      }
      if (res.status === 400) result.backedOff.blobUnknown++;
      if (res.status === 503) result.backedOff.gcInProgress++;
      if (!retries) return;
      if (res.status === 503) await new Promise((r) => setTimeout(r, 100)); // the run goes on a while
    }
    result.failures.push(`${t.name}@${t.version}: not accepted within a minute of retries`);
  };

  // Versions are checked three rounds after they were pushed (a GC run or two later) and then
  // deleted, so each GC run reads few manifests and runs often; the last rounds after a final GC.
  const verify = async (t: TemplateFixture) => {
    const ref = `${t.name}@${t.version}`;
    const storage = o.replicas[0]!;
    result.versions++;
    const manifest = await storage.get(`templates/${t.name}/versions/${t.version}.json`);
    if (!manifest?.equals(t.manifest)) {
      result.lost.push(`${ref}: manifest ${manifest ? "changed" : "missing"}`);
      return;
    }
    for (const blob of t.blobs) {
      const stream = await storeOf(storage).blobs.read(sha256(blob));
      const hash = createHash("sha256");
      if (stream) for await (const chunk of stream) hash.update(chunk as Buffer);
      if (!stream || hash.digest("hex") !== sha256(blob))
        result.lost.push(`${ref}: blob ${sha256(blob)} ${stream ? "wrong" : "missing"}`);
    }
  };
  const started = Date.now();
  const more = () =>
    Date.now() - started < o.durationMs ||
    ((result.acknowledged < o.minAcknowledged || result.backedOff.gcInProgress < (o.minGcInProgress ?? 0)) &&
      Date.now() - started < o.maxMs);
  // Independent lanes of rounds (names of their own): a round waits for its slowest pusher,
  // often one waiting for a GC run to end, and the other lanes push meanwhile.
  const lane = async (l: number) => {
    const rounds: Map<string, TemplateFixture>[] = [];
    for (let round = 0; more(); round++) {
      const pushes: Promise<void>[] = [];
      const acked = new Map<string, TemplateFixture>();
      rounds.push(acked);
      for (let i = 0; i < o.shared; i++) {
        const t = makeTemplate(`debian-13-x86_64-${o.label}-l${l}s${i}`, `1.0.${round}`, {
          blobs: [randomBytes(1024)],
        });
        const at = putAt();
        for (let p = 0; p < o.identical; p++) pushes.push(push(t, acked, at, p === 0));
      }
      const common = randomBytes(1024);
      for (let i = 0; i < o.distinct; i++) {
        const t = makeTemplate(`debian-13-x86_64-${o.label}-l${l}d${i}`, `1.0.${round}`, {
          blobs: [randomBytes(1024), common],
        });
        pushes.push(push(t, acked, putAt()));
      }
      await Promise.all(pushes);
      if (round >= 3) {
        for (const t of rounds[round - 3]!.values()) {
          await verify(t);
          await o.replicas[0]!.delete(`templates/${t.name}/versions/${t.version}.json`);
        }
      }
    }
    return rounds.slice(-3);
  };
  const last = await Promise.all(Array.from({ length: o.lanes }, (_, l) => lane(l)));
  stop = true;
  await Promise.all(loops);
  await gc(o.replicas[0]!).catch((err: Error) => result.failures.push(`gc: ${err.message}`));
  for (const acked of last.flat()) for (const t of acked.values()) await verify(t);
  console.log(
    `gc soak (${o.label}): ${result.acknowledged} acknowledged pushes of ${result.versions} versions checked; ` +
      `${result.lost.length} lost, ${result.false409} false 409s, ${result.failures.length} other failures; ` +
      `${result.gcRuns} GC runs deleted ${result.gcDeleted} blobs; PUTs retried after ` +
      `${result.backedOff.gcInProgress} GC_IN_PROGRESS, ${result.backedOff.blobUnknown} BLOB_UNKNOWN`,
  );
  return result;
}
