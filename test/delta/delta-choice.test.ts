import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  FIRST_REBUILD_ESTIMATE,
  hostSpeeds,
  linkMeter,
  parseDeltaMode,
  recordLinkSpeed,
  recordRebuildSpeed,
  routeCosts,
} from "../../client/host/delta-choice.js";

/** What --delta auto weighs, and what a host keeps of its own measurements. */
describe("delta route choice", () => {
  let dest: string;
  beforeAll(async () => {
    dest = await mkdtemp(join(tmpdir(), "templar-delta-choice-"));
    await mkdir(join(dest, ".templar"));
  });
  afterAll(async () => {
    await rm(dest, { recursive: true, force: true });
  });

  it("costs: the Debian pair over loopback and over 100 Mbit/s", () => {
    // 195.5 MiB tar, 62.4 MiB tar.zst, a host rebuilding at 150 MB/s.
    const pair = { tarSize: 205e6, artifactSize: 65.4e6, rebuildBytesPerSecond: 150e6 };
    const loopback = routeCosts({ ...pair, linkBytesPerSecond: 190e6 });
    expect(loopback.download).toBeLessThan(loopback.rebuild);
    const slow = routeCosts({ ...pair, linkBytesPerSecond: 12.5e6 });
    expect(slow.rebuild).toBeCloseTo(1.37, 2);
    expect(slow.download).toBeCloseTo(5.23, 2);
  });

  it("modes parse strictly", () => {
    expect(parseDeltaMode("auto")).toBe("auto");
    expect(parseDeltaMode("never")).toBe("never");
    expect(parseDeltaMode("Always")).toBeNull();
    expect(parseDeltaMode("1")).toBeNull();
  });

  it("the link meter leaves the request's round trip out", async () => {
    const started = performance.now();
    const meter = linkMeter(started, 3 << 20);
    await new Promise((r) => setTimeout(r, 100)); // the round trip before the first bytes
    meter.seen(1 << 20);
    await new Promise((r) => setTimeout(r, 50));
    meter.seen(3 << 20);
    const bps = meter.bytesPerSecond();
    // 2 MiB in about 50 ms: ~40 MiB/s, not 3 MiB over the 150 ms of the whole request.
    expect(bps).toBeGreaterThan((3 << 20) / 0.15);
    expect(meter.bytes()).toBe(2 << 20);
    // One chunk only: timed whole.
    const one = linkMeter(performance.now() - 1000, 1000);
    one.seen(1000);
    expect(one.bytesPerSecond()).toBeLessThan(1100);
  });

  it("keeps this host's speeds per format and registry; small downloads and broken records count for nothing", async () => {
    expect(await hostSpeeds(dest, "tar.xz", "https://r.example")).toEqual({
      rebuild: { bytesPerSecond: FIRST_REBUILD_ESTIMATE["tar.xz"], measured: false },
      link: null,
    });
    await recordRebuildSpeed(dest, "tar.zst", 123e6);
    await recordLinkSpeed(dest, "https://r.example", 64 << 20, 90e6);
    await recordLinkSpeed(dest, "https://other.example", 100_000, 1e3); // too small to tell
    expect(await hostSpeeds(dest, "tar.zst", "https://r.example")).toEqual({
      rebuild: { bytesPerSecond: 123e6, measured: true },
      link: 90e6,
    });
    expect((await hostSpeeds(dest, "tar.zst", "https://other.example")).link).toBeNull();
    const kept = JSON.parse(await readFile(join(dest, ".templar", "speeds.json"), "utf8"));
    expect(kept).toEqual({
      schemaVersion: 1,
      rebuild: { "tar.zst": 123e6 },
      download: { "https://r.example": 90e6 },
    });
    await writeFile(join(dest, ".templar", "speeds.json"), '{"schemaVersion":1,"rebuild":{"tar.zst":-5}}');
    expect(await hostSpeeds(dest, "tar.zst", "https://r.example")).toMatchObject({
      rebuild: { measured: false },
      link: null,
    });
  });
});
