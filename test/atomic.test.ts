import { lstat, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";

// A predictable temporary name, as an attacker who guessed it would plant it.
vi.mock("node:crypto", async (original) => ({
  ...(await original<typeof import("node:crypto")>()),
  randomBytes: (n: number) => Buffer.alloc(n, 0xab),
}));
const { writeFileAtomic } = await import("../common/atomic.js");

const dir = await mkdtemp(join(tmpdir(), "templar-atomic-"));
afterAll(() => rm(dir, { recursive: true, force: true }));

describe("writeFileAtomic", () => {
  it("creates its temporary file exclusively: a symlink planted at that name is not written through", async () => {
    const victim = join(dir, "victim");
    await writeFile(victim, "precious");
    const target = join(dir, "state.json");
    const temp = join(dir, `.state.json.${"ab".repeat(6)}.partial`);
    await symlink(victim, temp);
    await expect(writeFileAtomic(target, "new content")).rejects.toThrow(/EEXIST/);
    expect(await readFile(victim, "utf8")).toBe("precious");
    await expect(lstat(target)).rejects.toThrow(/ENOENT/);
    expect((await lstat(temp)).isSymbolicLink()).toBe(true); // not ours to remove

    await rm(temp);
    await writeFileAtomic(target, "new content");
    expect(await readFile(target, "utf8")).toBe("new content");
    await expect(lstat(temp)).rejects.toThrow(/ENOENT/);
  });
});
