import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inspectPath, readArtifact } from "../../builder/pack/inspect.js";
import { packTemplate } from "../../builder/pack/pack.js";
import type { PackResult } from "../../builder/pack/types.js";
import { haveTools } from "../helpers/require-tool.js";
import { removeDir, tempDir } from "./helpers.js";

const ready = haveTools("zstd", "gzip", "getfattr");

describe.skipIf(!ready)("inspect with in-process and program decompression", () => {
  let work: string;
  let packed: PackResult;
  beforeAll(async () => {
    work = tempDir("inspect");
    const tree = join(work, "tree");
    mkdirSync(join(tree, "etc"), { recursive: true });
    writeFileSync(join(tree, "etc", "numbers"), Array.from({ length: 50_000 }, (_, i) => `${i}\n`).join(""));
    packed = await packTemplate({
      rootfs: tree,
      outDir: join(work, "out"),
      name: "t-1",
      version: "1.0.0",
      sourceDateEpoch: 1,
    });
  });
  afterAll(() => removeDir(work));

  for (const inProcess of [false, true]) {
    it(`${inProcess ? "in-process" : "programs"}: reads what was packed and verifies every digest`, async () => {
      const report = await inspectPath(packed.manifestPath, inProcess);
      expect(report.problems).toEqual([]);
      expect(report.artifacts.map((a) => a.status)).toEqual(["ok", "ok"]);
      for (const a of report.artifacts) {
        expect(a.facts?.tarSha256).toBe(packed.manifest.rootfs.tarSha256);
        expect(a.facts?.entries).toBe(3);
      }
    });

    it(`${inProcess ? "in-process" : "programs"}: a truncated zst or gz is corrupt, exit code 3`, async () => {
      for (const format of ["tar.zst", "tar.gz"] as const) {
        const bytes = readFileSync(packed.files[format]!);
        const cut = join(work, `cut-${inProcess}.${format}`);
        writeFileSync(cut, bytes.subarray(0, bytes.length >> 1));
        const failure = await readArtifact(cut, inProcess).then(
          () => null,
          (err: unknown) => err as { message: string; exitCode: number },
        );
        expect(failure?.message, format).toMatch(/is corrupt or truncated/);
        expect(failure?.exitCode).toBe(3);
      }
    });
  }
});
