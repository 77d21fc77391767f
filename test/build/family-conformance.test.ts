import { spawnSync } from "node:child_process";
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { Family } from "../../builder/family/family.js";
import { families } from "../../builder/family/index.js";
import { UserError } from "../../common/errors.js";
import { debianTree, gentooTree, rhelTree } from "../fixtures/rootfs.js";
import { haveTools } from "../helpers/require-tool.js";

/**
 * One suite, run against every row of the family table (as the storage conformance suite runs
 * against every driver): what the builder relies on from a family's package manager, inventory
 * and container preset. A new family adds a sample root here, or this suite fails.
 */
const samples: Record<string, (root: string) => void> = {
  debian: (root) => debianTree(root, "13"),
  rhel: (root) => rhelTree(root, "fedora", "42"),
  gentoo: (root) => gentooTree(root, "openrc"),
};

const dir = mkdtempSync(join(tmpdir(), "templar-family-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const newDir = (label: string) => {
  const path = join(dir, `${label}-${++n}`);
  mkdirSync(path, { recursive: true });
  return path;
};

/** Every entry below `root` with its type, mode and content: two equal snapshots mean equal trees. */
function snapshot(root: string, rel = ""): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(root, rel)).sort()) {
    const path = join(rel, name);
    const st = lstatSync(join(root, path));
    if (st.isDirectory()) out.push(`${path}/ ${st.mode}`, ...snapshot(root, path));
    else if (st.isSymbolicLink()) out.push(`${path} -> link`);
    else
      out.push(`${path} ${st.mode} ${st.mode & 0o444 ? readFileSync(join(root, path), "latin1") : st.size}`);
  }
  return out;
}

const rpmReady = haveTools("rpm");

describe("every family in the table", () => {
  it("owns its distros alone", () => {
    const all = families.flatMap((f) => f.distros);
    expect(all.length).toBeGreaterThan(0);
    expect(new Set(all).size).toBe(all.length);
    for (const family of families)
      expect(samples[family.name], `a sample root for ${family.name}`).toBeDefined();
  });
});

describe.each(families.map((f) => [f.name, f] as [string, Family]))("family %s", (name, family) => {
  const needsRpm = family.inventory.name === "rpm";
  const skip = needsRpm && !rpmReady;
  if (skip && process.env.CI === "true") throw new Error("rpm is missing: the rpm family cannot be checked");
  if (skip) console.warn("skipping the rpm family's conformance: rpm is not installed");

  it("package manager scripts are valid shell and keep each package one word", () => {
    const odd = ["plain", "name with space", "it's"];
    for (const script of [
      family.packageManager.installScript(odd),
      family.packageManager.removeScript(odd),
    ]) {
      const check = spawnSync("sh", ["-n", "-c", script], { encoding: "utf8" });
      expect(check.status, check.stderr).toBe(0);
      expect(script).toContain("'name with space'");
    }
  });

  it.skipIf(skip)("inventory lists the sample root's packages, sorted, and dates them", async () => {
    const root = newDir(name);
    samples[name]!(root);
    const packages = await family.inventory.packages(root);
    expect(packages.length).toBeGreaterThan(0);
    const keys = packages.map((p) => `${p.name}\0${p.arch ?? ""}`);
    expect(keys).toEqual([...keys].sort());
    for (const p of packages) expect(p.version).toMatch(/\S/);
    const newest = await family.inventory.newestPackageDate(root);
    if (newest !== undefined) expect(Number.isInteger(newest)).toBe(true);
  });

  it.skipIf(skip)(
    "inventory of a root without a package database is a clear error or empty, never a crash",
    async () => {
      const root = newDir(`${name}-empty`);
      try {
        expect(await family.inventory.packages(root)).toEqual([]);
      } catch (err) {
        expect(err).toBeInstanceOf(UserError);
        expect((err as Error).message).toMatch(new RegExp(family.inventory.name));
      }
    },
  );

  it("the container preset is idempotent", async () => {
    const root = newDir(name);
    samples[name]!(root);
    await family.preset.apply(root, () => {});
    const once = snapshot(root);
    await family.preset.apply(root, () => {});
    expect(snapshot(root)).toEqual(once);
  });

  it("the container preset writes nothing outside the root, even through the root's links", async () => {
    const root = newDir(name);
    samples[name]!(root);
    const outside = newDir(`${name}-outside`);
    for (const file of ["hostname", "machine-id", "hosts", "resolv.conf"])
      writeFileSync(join(outside, file), "host's own\n");
    for (const file of ["hostname", "machine-id", "hosts", "resolv.conf"]) {
      rmSync(join(root, "etc", file), { force: true });
      symlinkSync(join(outside, file), join(root, "etc", file));
    }
    await family.preset.apply(root, () => {}).catch((err: unknown) => expect(err).toBeInstanceOf(UserError));
    for (const file of readdirSync(outside))
      expect(readFileSync(join(outside, file), "utf8")).toBe("host's own\n");
    expect(readdirSync(outside).sort()).toEqual(["hostname", "hosts", "machine-id", "resolv.conf"]);
  });
});
