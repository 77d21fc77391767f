import { mkdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { haveTools } from "../helpers/require-tool.js";
import {
  type CompatRegistry,
  generateKey,
  gpgHome,
  type Keys,
  packRootfs,
  push,
  runAsync,
  startCompatRegistry,
} from "./fixture.js";

/**
 * vztmpl-dl against the registry, with real wget doing exactly what vztmpl-dl does for each
 * repository and suffix: `wget -q --spider URL`, then `wget -N -P $TEMPLATE/cache URL`, and with
 * CHECK_TEMPLATE_SIG=yes `URL.asc` checked by `gpg --verify`.
 */
const ready = haveTools("wget", "gpg", "tar", "gzip", "zstd");

function wget(...args: string[]) {
  return runAsync("wget", ["--tries=1", "--timeout=20", ...args]);
}

describe.skipIf(!ready)("OpenVZ: vztmpl-dl's wget calls against /precreated/", () => {
  let reg: CompatRegistry;
  let maintainer: Keys;
  const name = "centos-10-x86_64-minimal";

  beforeAll(async () => {
    reg = await startCompatRegistry();
    maintainer = await generateKey(join(reg.dir, "maintainer"), "OpenVZ Maintainer");
    const v1 = await packRootfs(reg.dir, name, "10.0.0", {
      signKey: maintainer.secret,
      epoch: 1_780_000_000,
    });
    await push(reg, v1.outDir);
  }, 60_000);
  afterAll(async () => reg?.close());

  it("lists templates in .listing, one name per line without suffix", async () => {
    const res = await fetch(`${reg.url}/precreated/.listing`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(`${name}\n`);
  });

  it("spider, first download, no re-download, re-download after a newer push, and gpg --verify", async () => {
    const cache = join(reg.dir, "vz", "template", "cache");
    await mkdir(cache, { recursive: true });
    const url = `${reg.url}/precreated/${name}.tar.gz`;
    const file = join(cache, `${name}.tar.gz`);

    expect((await wget("-q", "--spider", url)).status).toBe(0);
    expect((await wget("-q", "--spider", `${reg.url}/precreated/nosuch-1-x86_64.tar.gz`)).status).not.toBe(0);

    const first = await wget("-N", "-P", cache, url);
    expect(first.status, first.stderr).toBe(0);
    const st1 = await stat(file);
    // wget -N sets the file's mtime from Last-Modified: the version's `created`.
    expect(st1.mtimeMs).toBe(1_780_000_000_000);
    const head = await fetch(url, { method: "HEAD" });
    expect(head.headers.get("content-length")).toBe(String(st1.size));
    expect(head.headers.get("last-modified")).toBe(new Date(1_780_000_000_000).toUTCString());

    // Nothing changed: wget does not download again (304 to its If-Modified-Since).
    const second = await wget("-N", "-P", cache, url);
    expect(second.status, second.stderr).toBe(0);
    expect(second.stderr).not.toMatch(/saved/);
    const st2 = await stat(file);
    expect([st2.ino, st2.mtimeMs, st2.ctimeMs]).toEqual([st1.ino, st1.mtimeMs, st1.ctimeMs]);

    // A newer version: wget -N fetches it.
    const v2 = await packRootfs(reg.dir, name, "10.1.0", {
      signKey: maintainer.secret,
      epoch: 1_780_200_000,
    });
    await push(reg, v2.outDir);
    expect((await wget("-q", "--spider", url)).status).toBe(0);
    const third = await wget("-N", "-P", cache, url);
    expect(third.status, third.stderr).toBe(0);
    expect(third.stderr).toMatch(/saved/);
    expect((await readFile(file)).equals(await readFile(v2.file("tar.gz")))).toBe(true);
    expect((await stat(file)).mtimeMs).toBe(1_780_200_000_000);

    // CHECK_TEMPLATE_SIG=yes: vztmpl-dl fetches URL.asc and runs gpg --verify.
    const asc = await wget("-q", "-N", "-P", cache, `${url}.asc`);
    expect(asc.status, asc.stderr).toBe(0);
    const gpg = await gpgHome(reg.dir);
    expect(gpg("--import", maintainer.public).status).toBe(0);
    const verify = gpg("--verify", `${file}.asc`, file);
    expect(verify.status, verify.stderr).toBe(0);
    expect(verify.stderr).toMatch(/Good signature/);
  }, 60_000);

  it("serves tar.zst too, and the beta channel includes pre-releases", async () => {
    expect((await fetch(`${reg.url}/precreated/${name}.tar.zst`, { method: "HEAD" })).status).toBe(200);
    expect((await fetch(`${reg.url}/precreated/${name}.tar.xz`, { method: "HEAD" })).status).toBe(404);
    const rc = await packRootfs(reg.dir, name, "11.0.0-rc.1", { epoch: 1_780_300_000 });
    await push(reg, rc.outDir);
    const stable = await fetch(`${reg.url}/precreated/${name}.tar.gz`, { method: "HEAD" });
    expect(stable.headers.get("x-template-version")).toBe("10.1.0");
    const beta = await fetch(`${reg.url}/precreated/beta/${name}.tar.gz`, { method: "HEAD" });
    expect(beta.headers.get("x-template-version")).toBe("11.0.0-rc.1");
    expect(await (await fetch(`${reg.url}/precreated/beta/.listing`)).text()).toBe(`${name}\n`);
    // Any other channel is a tag.
    const auth = { authorization: `Bearer ${reg.token}` };
    const tag = await fetch(`${reg.url}/v1/templates/${name}/tags/lts`, {
      method: "PUT",
      headers: auth,
      body: "10.0.0",
    });
    expect(tag.status).toBeLessThan(300);
    const lts = await fetch(`${reg.url}/precreated/lts/${name}.tar.gz`, { method: "HEAD" });
    expect(lts.headers.get("x-template-version")).toBe("10.0.0");
    expect(await (await fetch(`${reg.url}/precreated/unsupported/.listing`)).text()).toBe("");
  }, 60_000);
});
