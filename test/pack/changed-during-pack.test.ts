import { spawnSync } from "node:child_process";
import {
  appendFileSync,
  chmodSync,
  existsSync,
  mkdirSync,
  renameSync,
  rmSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeTar } from "../../builder/pack/tar-writer.js";
import { type WalkEntry, walkTree } from "../../builder/pack/walk.js";
import { UserError } from "../../common/errors.js";
import { CLI, removeDir, tempDir } from "./helpers.js";

const DIST = join(CLI, "../..");
if (!existsSync(CLI) && process.env.CI === "true")
  throw new Error("dist/ is missing: run npm run build first");

/**
 * The tree changes between the walk's lstat and the read of a file (the walk runs ahead of the
 * writer, and anyone who can write to the tree may change it meanwhile). Deterministic: the walk
 * is made first (writeTar's `entries`), the tree is changed, then the writer reads it.
 */
let work: string;
let n = 0;
beforeAll(() => {
  work = tempDir("changed-during-pack");
});
afterAll(() => removeDir(work));

const SECRET = "root-only secret\n";

/** A tree with etc/passwd (world-readable) next to a root-only file outside it. */
function fresh(size = 10): { root: string; secret: string; passwd: string } {
  const base = join(work, `case-${++n}`);
  const root = join(base, "root");
  mkdirSync(join(root, "etc"), { recursive: true });
  const passwd = join(root, "etc/passwd");
  writeFileSync(passwd, "p".repeat(size), { mode: 0o644 });
  writeFileSync(join(root, "etc/zz-after"), "after\n");
  const secret = join(base, "shadow");
  writeFileSync(secret, SECRET.padEnd(size, "s"), { mode: 0o600 });
  return { root, secret, passwd };
}

/** Walks first, then changes the tree, then writes; the tar bytes or the error. */
async function packAfter(
  root: string,
  change: () => void,
  chunkSize?: number,
): Promise<{ tar: Buffer; error?: undefined } | { tar: Buffer; error: Error }> {
  const entries: WalkEntry[] = [...walkTree(root, () => {})];
  change();
  const chunks: Buffer[] = [];
  try {
    await writeTar({
      root,
      entries,
      xattrs: new Map(),
      warn: () => {},
      emit: (chunk) => {
        chunks.push(Buffer.from(chunk));
        return undefined;
      },
      ...(chunkSize ? { chunkSize } : {}),
    });
    return { tar: Buffer.concat(chunks) };
  } catch (error) {
    return { tar: Buffer.concat(chunks), error: error as Error };
  }
}

function expectRefused(
  result: { tar: Buffer; error?: Error },
  message: RegExp,
  secret: string | undefined = SECRET,
) {
  expect(result.error, "the pack must fail").toBeInstanceOf(UserError);
  expect(result.error!.message).toMatch(/\.\/etc\/passwd/);
  expect(result.error!.message).toMatch(message);
  if (secret) expect(result.tar.toString("latin1")).not.toContain(secret.trim());
}

describe("a file that changes between the walk and its read fails the pack, naming it", () => {
  it("a regular file replaced by a symlink to a root-only file is not followed", async () => {
    const { root, secret, passwd } = fresh(SECRET.length);
    const result = await packAfter(root, () => {
      rmSync(passwd);
      symlinkSync(secret, passwd);
    });
    expectRefused(result, /changed while it was being packed \(it is a symlink now/);
  });

  it("a regular file replaced by another file of the same size (renamed over it)", async () => {
    const { root, passwd } = fresh(SECRET.length);
    const other = join(root, "..", "other");
    writeFileSync(other, SECRET, { mode: 0o600 });
    const result = await packAfter(root, () => renameSync(other, passwd));
    expectRefused(result, /changed while it was being packed \(another file is at its path now/);
  });

  it("a file that grew is not silently cut to its listed size", async () => {
    const { root, passwd } = fresh();
    const result = await packAfter(root, () => appendFileSync(passwd, "more"));
    expectRefused(result, /grew while it was being packed \(10 bytes when listed, 14 now\)/, undefined);
  });

  it("a file that shrank", async () => {
    const { root, passwd } = fresh();
    const result = await packAfter(root, () => truncateSync(passwd, 4));
    expectRefused(result, /shrank while it was being packed/, undefined);
  });

  it("an empty file that grew", async () => {
    const { root, passwd } = fresh(0);
    const result = await packAfter(root, () => appendFileSync(passwd, "x"));
    expectRefused(result, /grew while it was being packed \(0 bytes when listed, 1 now\)/, undefined);
  });

  it("a fifo swapped in fails at once instead of blocking the pack", () => {
    // In a child process with a time limit: an open that blocks would hang this test worker.
    const { root, passwd } = fresh();
    const script = `
      import { execFileSync } from "node:child_process";
      import { rmSync } from "node:fs";
      import { writeTar } from ${JSON.stringify(join(DIST, "builder/pack/tar-writer.js"))};
      import { walkTree } from ${JSON.stringify(join(DIST, "builder/pack/walk.js"))};
      const [root, path] = process.argv.slice(1);
      const entries = [...walkTree(root, () => {})];
      rmSync(path);
      execFileSync("mkfifo", [path]);
      await writeTar({ root, entries, xattrs: new Map(), warn: () => {}, emit: () => undefined }).then(
        () => console.log("packed"),
        (e) => console.log(e.message),
      );`;
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", script, root, passwd], {
      encoding: "utf8",
      timeout: 10_000,
    });
    expect(r.signal, "the pack blocked on the fifo").toBeNull();
    expect(r.stdout, r.stderr).toMatch(
      /\.\/etc\/passwd changed while it was being packed \(it is no longer a regular file/,
    );
  }, 20_000);

  it("a file larger than the output chunk: no byte of the swapped-in file is handed on", async () => {
    const size = 64 * 1024;
    const { root, secret, passwd } = fresh(size);
    const result = await packAfter(
      root,
      () => {
        rmSync(passwd);
        renameSync(secret, passwd);
        chmodSync(passwd, 0o600);
      },
      4096,
    );
    expectRefused(result, /changed while it was being packed \(another file is at its path now/);
    // The header of ./etc/passwd may be out, but none of the other file's data.
    expect(result.tar.toString("latin1")).not.toContain("s".repeat(512));
  });

  it("an unchanged tree packs as before", async () => {
    const { root } = fresh();
    const result = await packAfter(root, () => {});
    expect(result.error).toBeUndefined();
    expect(result.tar.toString("latin1")).toContain("p".repeat(10));
  });
});
