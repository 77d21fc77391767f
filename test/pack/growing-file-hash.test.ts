import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { GrowingFileHash } from "../../builder/pack/growing-file-hash.js";

// The artifact digests in the manifest come from hashing each compressor's output while the
// compressor writes it. A read that overtook the writer, or a tail left unread at the end,
// would give a digest of other bytes.
const dir = mkdtempSync(join(tmpdir(), "templar-growing-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * A separate process appending random bursts to `path`, with pauses longer than the poll before
 * each: the last burst lands just before the writer exits, so digest() must read it itself.
 */
function slowWriter(path: string, bursts: number): Promise<void> {
  const fd = openSync(path, "wx");
  const script = `for i in $(seq ${bursts}); do sleep 0.03; head -c $((i * 70000)) /dev/urandom; done`;
  const child = spawn("sh", ["-c", script], { stdio: ["ignore", fd, "inherit"] });
  closeSync(fd);
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`writer exited ${code}`))));
  });
}

describe("hash of a growing file", () => {
  it("equals the hash of the finished file, whatever the writer's pace", async () => {
    for (const bursts of [0, 1, 6]) {
      const path = join(dir, `out-${bursts}`);
      const writing = slowWriter(path, bursts);
      const hash = new GrowingFileHash(path);
      await writing;
      const { hex, size } = await hash.digest();
      const bytes = readFileSync(path);
      expect(size).toBe(bytes.length);
      expect(hex).toBe(createHash("sha256").update(bytes).digest("hex"));
    }
  });

  it("stops following when cancelled", async () => {
    const path = join(dir, "cancelled");
    closeSync(openSync(path, "wx"));
    const hash = new GrowingFileHash(path);
    hash.cancel();
    await expect(hash.digest()).rejects.toThrow(/cancelled/);
  });
});
