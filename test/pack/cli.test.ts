import { execFileSync, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { haveTools, isRoot } from "../helpers/require-tool.js";
import { CLI, removeDir, runCli, tempDir } from "./helpers.js";

const ready = isRoot() && haveTools("zstd", "gzip", "xz", "getfattr", "setpriv");
const NAME = "debian-13-x86_64-cli";
const base = (out: string) => ["--name", NAME, "--version", "1.0.0", "--out", out];

/** One line on stderr, no stack trace, non-zero exit. */
function expectOneLineError(r: { code: number | null; stderr: string }, pattern: RegExp) {
  expect(r.code).not.toBe(0);
  const lines = r.stderr.trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^templar: /);
  expect(lines[0]).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

describe.skipIf(!ready)("templar pack and inspect from the command line", () => {
  let work: string;
  let tree: string;
  beforeAll(() => {
    work = tempDir("cli");
    tree = join(work, "tree");
    mkdirSync(join(tree, "etc"), { recursive: true });
    writeFileSync(join(tree, "etc", "hostname"), "localhost\n");
    writeFileSync(join(tree, "data"), Buffer.alloc(200_000, 7));
  });
  afterAll(() => removeDir(work));

  const noOutput = (out: string) => {
    let files: string[] = [];
    try {
      files = readdirSync(out);
    } catch {
      return;
    }
    expect(files).toEqual([]);
  };

  it("refuses a missing directory", () => {
    const out = join(work, "o-missing");
    expectOneLineError(
      runCli(["pack", join(work, "nope"), ...base(out)]),
      /rootfs directory .*nope does not exist/,
    );
    noOutput(out);
  });

  it("refuses a bad name and a bad version", () => {
    const out = join(work, "o-name");
    expectOneLineError(
      runCli(["pack", tree, "--name", "Debian/13", "--version", "1.0.0", "--out", out]),
      /template name "Debian\/13" must match/,
    );
    expectOneLineError(
      runCli(["pack", tree, "--name", NAME, "--version", "v1", "--out", out]),
      /version "v1" is not a semantic version/,
    );
    noOutput(out);
  });

  it("refuses an unknown format", () => {
    const out = join(work, "o-format");
    expectOneLineError(runCli(["pack", tree, ...base(out), "--formats", "zst,bz2"]), /unknown format "bz2"/);
    noOutput(out);
  });

  it("refuses an unreadable file and leaves no partial output", () => {
    const secret = join(tree, "etc", "secret");
    writeFileSync(secret, "s3cret\n");
    chmodSync(secret, 0o000);
    const out = join(work, "o-unreadable");
    mkdirSync(out);
    try {
      // Root reads anything: drop the capabilities that let it, as an unprivileged build would be.
      const r = runCli(["pack", tree, ...base(out)], {
        prefix: ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search", "--"],
      });
      expectOneLineError(r, /cannot read \.\/etc\/secret: permission denied/);
      expect(readdirSync(out)).toEqual([]); // no temp files, no artifacts, no manifest
    } finally {
      chmodSync(secret, 0o644);
      execFileSync("rm", ["-f", secret]);
    }
  });

  it("refuses a rootfs that is a file, and an output directory inside the rootfs", () => {
    expectOneLineError(
      runCli(["pack", join(tree, "data"), ...base(join(work, "o-file"))]),
      /is not a directory/,
    );
    expectOneLineError(runCli(["pack", tree, ...base(join(tree, "out"))]), /must not be inside the rootfs/);
  });

  it("removes its partial output when interrupted", async () => {
    const big = join(work, "big-tree");
    mkdirSync(big);
    writeFileSync(join(big, "random"), randomBytes(48 << 20)); // xz needs seconds for this
    const out = join(work, "o-interrupted");
    mkdirSync(out);
    const child = spawn(process.execPath, [CLI, "pack", big, ...base(out), "--formats", "xz,gz"], {
      stdio: "ignore",
    });
    const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
    // Packing happens in a hidden staging directory inside out/: nothing else appears meanwhile.
    const staged = () => readdirSync(out).flatMap((d) => readdirSync(join(out, d)).map((f) => `${d}/${f}`));
    for (let i = 0; i < 200 && staged().length < 2; i++) await sleep(25);
    expect(readdirSync(out)).toEqual([expect.stringMatching(/^\.templar-staging-/)]);
    expect(staged().every((f) => f.endsWith(".partial"))).toBe(true);
    child.kill("SIGINT");
    expect(await exited).toBe(130);
    expect(readdirSync(out)).toEqual([]);
  });

  it("a signature that cannot be made leaves nothing in the output directory", () => {
    const gnupg = join(work, "gnupg-empty");
    mkdirSync(gnupg, { mode: 0o700 });
    const out = join(work, "o-unsigned");
    const r = runCli(["pack", tree, ...base(out), "--sign-with", "gpg:nobody@example.invalid"], {
      env: { GNUPGHOME: gnupg },
    });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n").pop()).toMatch(
      /^templar: gpg could not sign with key nobody@example\.invalid/,
    );
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(readdirSync(out)).toEqual([]);
  });

  it("reports a compressor that fails half-way, and leaves nothing behind", () => {
    const fake = join(work, "fake-bin");
    mkdirSync(fake);
    // A zstd that reads a little, then fails: the producer meets EPIPE, the error names zstd.
    writeFileSync(
      join(fake, "zstd"),
      "#!/bin/sh\nhead -c 100000 > /dev/null\necho 'zstd: simulated failure' >&2\nexit 1\n",
      {
        mode: 0o755,
      },
    );
    const out = join(work, "o-failing");
    const r = runCli(["pack", tree, ...base(out)], { env: { PATH: `${fake}:${process.env.PATH}` } });
    expectOneLineError(r, /^templar: zstd exited early \(exit code 1\): zstd: simulated failure$/);
    expect(readdirSync(out)).toEqual([]);
  });

  it("feeds a compressor program and an in-process one in the same pass", () => {
    // Only zstd on PATH (and the tools pack needs): gzip is compressed by node:zlib, zstd reads a fifo.
    const bin = join(work, "only-zstd-bin");
    mkdirSync(bin);
    for (const tool of ["zstd", "mkfifo", "getfattr"]) {
      const found = spawnSync("sh", ["-c", `command -v ${tool}`], { encoding: "utf8" }).stdout.trim();
      symlinkSync(found, join(bin, tool));
    }
    const out = join(work, "o-mixed");
    const r = runCli(["pack", tree, ...base(out), "--formats", "zst,gz"], { env: { PATH: bin } });
    expect(r.code, r.stderr).toBe(0);
    const check = runCli(["inspect", join(out, `${NAME}-1.0.0.manifest.json`)]);
    expect(check.code, check.stderr).toBe(0);
    expect(check.stdout).toMatch(/^tar\.zst .*verified$/m);
    expect(check.stdout).toMatch(/^tar\.gz .*verified$/m);
  });

  it("writes at a lower priority than zstd, which reads ahead, but not than pigz", () => {
    // Stand-ins that read 64 KiB, note their parent's (the packer's main thread) niceness and
    // their own while the packer waits on the full fifo, then hand everything to the real program.
    const bin = join(work, "noting-bin");
    mkdirSync(bin);
    for (const tool of ["zstd", "pigz", "mkfifo", "getfattr"]) {
      // Without pigz, the packer falls back to gzip: it then runs under pigz's name here.
      const lookup = tool === "pigz" ? "command -v pigz || command -v gzip" : `command -v ${tool}`;
      const found = spawnSync("sh", ["-c", lookup], { encoding: "utf8" }).stdout.trim();
      if (tool === "mkfifo" || tool === "getfattr") {
        symlinkSync(found, join(bin, tool));
        continue;
      }
      const log = join(work, `${tool}.nice`);
      writeFileSync(
        join(bin, tool),
        `#!/bin/sh\nPATH=/usr/bin:/bin\nhead -c 65536 > "${log}.head"\n` +
          `echo "$(cut -d' ' -f19 /proc/$PPID/stat) $(cut -d' ' -f19 /proc/$$/stat)" > "${log}"\n` +
          `cat "${log}.head" - | "${found}" "$@"\n`,
        { mode: 0o755 },
      );
    }
    const big = join(work, "priority-tree");
    mkdirSync(big);
    writeFileSync(join(big, "data"), randomBytes(3 << 20));
    const niceness = (tool: string) =>
      readFileSync(join(work, `${tool}.nice`), "utf8")
        .trim()
        .split(" ")
        .map(Number);
    for (const [format, tool] of [
      ["zst", "zstd"],
      ["gz", "pigz"],
    ] as const) {
      const out = join(work, `o-nice-${format}`);
      const r = runCli(["pack", big, ...base(out), "--formats", format], { env: { PATH: bin } });
      expect(r.code, r.stderr).toBe(0);
      const [packer, compressor] = niceness(tool);
      expect(packer, format).toBe(format === "zst" ? Math.min(19, compressor! + 10) : compressor);
      expect(runCli(["inspect", join(out, `${NAME}-1.0.0.manifest.json`)]).code).toBe(0);
    }
  });

  describe("inspect", () => {
    let out: string;
    beforeAll(() => {
      out = join(work, "good");
      const r = runCli(["pack", tree, ...base(out), "--source-date-epoch", "1700000000"]);
      expect(r.code, r.stderr).toBe(0);
    });
    const manifestPath = () => join(out, `${NAME}-1.0.0.manifest.json`);
    const zst = () => join(out, `${NAME}-1.0.0.tar.zst`);

    it("shows name, version, sizes, entries and verifies every artifact of a manifest", () => {
      const r = runCli(["inspect", manifestPath()]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^name: +debian-13-x86_64-cli$/m);
      expect(r.stdout).toMatch(/^version: +1\.0\.0$/m);
      expect(r.stdout).toMatch(/ 4 entries/);
      expect(r.stdout).toMatch(/^tar\.zst .*verified$/m);
      expect(r.stdout).toMatch(/^tar\.gz .*verified$/m);
      const json = JSON.parse(runCli(["inspect", zst(), "--json"]).stdout);
      expect(json.ok).toBe(true);
      expect(json.artifacts[0].facts.entries).toBe(4);
    });

    it("reports a corrupt file with exit code 3", () => {
      const dir = join(work, "corrupt");
      execFileSync("cp", ["-a", out, dir]);
      const file = join(dir, `${NAME}-1.0.0.tar.zst`);
      const bytes = readFileSync(file);
      bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
      writeFileSync(file, bytes);
      const r = runCli(["inspect", file]);
      expect(r.code).toBe(3);
      expect(r.stderr + r.stdout).toMatch(/corrupt|does not match/);
    });

    it("reports a truncated file with exit code 3, for zst and gz", () => {
      const dir = join(work, "truncated");
      execFileSync("cp", ["-a", out, dir]);
      for (const format of ["tar.zst", "tar.gz"]) {
        const file = join(dir, `${NAME}-1.0.0.${format}`);
        truncateSync(file, Math.floor(readFileSync(file).length / 2));
        const r = runCli(["inspect", file]);
        expect(r.code, format).toBe(3);
        expect(r.stderr, format).toMatch(/is corrupt or truncated/);
        expect(r.stderr.trim().split("\n")).toHaveLength(1);
      }
      expect(runCli(["inspect", join(dir, `${NAME}-1.0.0.manifest.json`)]).code).toBe(3);
    });

    it("reports a manifest that does not match its artifact", () => {
      const dir = join(work, "mismatch");
      execFileSync("cp", ["-a", out, dir]);
      const path = join(dir, `${NAME}-1.0.0.manifest.json`);
      const manifest = JSON.parse(readFileSync(path, "utf8"));
      manifest.rootfs.entries += 1;
      writeFileSync(path, JSON.stringify(manifest));
      const r = runCli(["inspect", path]);
      expect(r.code).toBe(3);
      expect(r.stdout).toMatch(/4 tar entries, manifest says 5/);
    });
  });
});
