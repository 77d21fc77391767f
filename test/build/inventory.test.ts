import { mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { dpkg } from "../../builder/inventory/dpkg.js";
import { portageDb } from "../../builder/inventory/portage.js";
import { rpm } from "../../builder/inventory/rpm.js";
import { UserError } from "../../common/errors.js";
import { rpmDatabase } from "../fixtures/rootfs.js";
import { haveTools } from "../helpers/require-tool.js";

/**
 * The package inventories read the root's database, never the build host's: a database path
 * that is an absolute symlink in the root is resolved inside the root, as after chroot. Each
 * case has a stand-in "host" directory at an absolute path H with its own database, and a root
 * whose database path links to H; the root's own copy lives at H inside the root.
 */
const dir = mkdtempSync(join(tmpdir(), "templar-inventory-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

function write(path: string, content: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, content);
}

/** A root, and a host directory H (absolute) that the root's `dbPath` links to. */
function hostileRoot(dbPath: string): { root: string; host: string; inRoot: (p: string) => string } {
  const base = join(dir, `case-${++n}`);
  const root = join(base, "root");
  const host = join(base, "host");
  mkdirSync(join(root, dirname(dbPath)), { recursive: true });
  mkdirSync(host, { recursive: true });
  symlinkSync(host, join(root, dbPath));
  return { root, host, inRoot: (p) => join(root, host, p) };
}

const stanza = (name: string) =>
  `Package: ${name}\nStatus: install ok installed\nVersion: 1.0\nArchitecture: amd64\n`;

describe("inventories resolve the database path inside the root", () => {
  it("dpkg: var/lib/dpkg linking to an absolute path lists the root's packages", async () => {
    const { root, host, inRoot } = hostileRoot("var/lib/dpkg");
    write(join(host, "status"), stanza("build-host-only"));
    write(inRoot("status"), stanza("in-the-root"));
    expect((await dpkg.packages(root)).map((p) => p.name)).toEqual(["in-the-root"]);
  });

  it("dpkg: var/lib/dpkg -> /var/lib/dpkg is a loop inside the root, not the host's database", async () => {
    const root = join(dir, `case-${++n}`);
    mkdirSync(join(root, "var/lib"), { recursive: true });
    symlinkSync("/var/lib/dpkg", join(root, "var/lib/dpkg"));
    const err = await dpkg.packages(root).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(
      /^dpkg inventory: cannot read \/var\/lib\/dpkg\/status of the root: .*too many symbolic links inside the root/,
    );
  });

  it("dpkg: the newest package date comes from the root's usr/share/doc", async () => {
    const { root, host, inRoot } = hostileRoot("usr/share/doc");
    write(join(host, "hostpkg/changelog.Debian.gz"), "x");
    utimesSync(join(host, "hostpkg/changelog.Debian.gz"), 2_000_000_000, 2_000_000_000);
    write(inRoot("bash/changelog.Debian.gz"), "x");
    utimesSync(inRoot("bash/changelog.Debian.gz"), 1_700_000_000, 1_700_000_000);
    expect(await dpkg.newestPackageDate(root)).toBe(1_700_000_000);
  });

  it("portage: var/db/pkg linking to an absolute path lists the root's packages and dates", async () => {
    const { root, host, inRoot } = hostileRoot("var/db/pkg");
    write(join(host, "evil/build-host-only-1.0/PF"), "build-host-only-1.0\n");
    utimesSync(join(host, "evil/build-host-only-1.0/PF"), 2_000_000_000, 2_000_000_000);
    write(inRoot("app-shells/bash-5.2_p37-r1/PF"), "bash-5.2_p37-r1\n");
    write(inRoot("app-shells/bash-5.2_p37-r1/CHOST"), "x86_64-pc-linux-gnu\n");
    utimesSync(inRoot("app-shells/bash-5.2_p37-r1/PF"), 1_700_000_000, 1_700_000_000);
    expect(await portageDb.packages(root)).toEqual([
      { name: "app-shells/bash", version: "5.2_p37-r1", arch: "amd64" },
    ]);
    expect(await portageDb.newestPackageDate(root)).toBe(1_700_000_000);
  });

  it.skipIf(!haveTools("rpm", "rpmbuild"))(
    "rpm: var/lib/rpm linking to an absolute path reads the root's database",
    async () => {
      const base = join(dir, `case-${++n}`);
      const root = join(base, "root");
      // rpmDatabase(R) makes R/usr/lib/sysimage/rpm: the host's, and the root's at the same path.
      const hostRoot = join(base, "host");
      rpmDatabase(hostRoot, [{ name: "build-host-only", version: "1", release: "1" }]);
      rpmDatabase(join(root, hostRoot), [{ name: "in-the-root", version: "2", release: "1" }]);
      mkdirSync(join(root, "var/lib"), { recursive: true });
      symlinkSync(join(hostRoot, "usr/lib/sysimage/rpm"), join(root, "var/lib/rpm"));
      expect((await rpm.packages(root)).map((p) => p.name)).toEqual(["in-the-root"]);
    },
  );

  it.skipIf(!haveTools("rpm", "rpmbuild"))(
    "rpm: a symlink inside the database directory is refused (rpm and sqlite would follow it)",
    async () => {
      const root = join(dir, `case-${++n}`);
      rpmDatabase(root, [{ name: "bash", version: "5", release: "1" }]);
      rmSync(join(root, "usr/lib/sysimage/rpm/rpmdb.sqlite-wal"), { force: true });
      symlinkSync("/etc/passwd", join(root, "usr/lib/sysimage/rpm/rpmdb.sqlite-wal"));
      await expect(rpm.packages(root)).rejects.toThrow(
        /^rpm inventory: \/usr\/lib\/sysimage\/rpm\/rpmdb\.sqlite-wal in the root is a symlink/,
      );
    },
  );
});
