import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Browser, haveChromium, launchChromium } from "../helpers/chromium.js";
import {
  createToken,
  type RegistryProcess,
  runProcess,
  startRegistry,
  templar,
} from "../helpers/registry-process.js";
import { makeTree } from "../helpers/template-fixture.js";

/**
 * Trust on the pages, in headless Chromium: who signed (fingerprint and user id, from the push
 * policy's keyring), the maintainer's public key served at /keys/<fingerprint>.asc, the keyring
 * step before every pull command (and run as printed), the vztmpl-dl settings that check
 * signatures, each artifact's .asc, "pushed" beside "created", and aplinfo's Infopage.
 */
const NAME = "trust-13-x86_64-minimal";

describe.skipIf(!haveChromium())("pages show who signed and how to trust it", () => {
  let dir: string;
  let registry: RegistryProcess;
  let browser: Browser;
  let page: Page;
  let fingerprint: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "templar-pagestrust-"));
    const key = await templar([
      "key",
      "generate",
      "--name",
      "Example Templates",
      "--email",
      "templates@example.org",
      "--out",
      join(dir, "keys", "maintainer"),
    ]);
    fingerprint = /fingerprint: ([0-9A-F]{40})/.exec(key.stdout)![1]!;
    const config = join(dir, "registry.yaml");
    await writeFile(config, "gc:\n  interval: 0\npushPolicy:\n  keyrings: [keys/maintainer.pub.asc]\n");
    const token = createToken(config, "push:*");
    await makeTree(join(dir, "rootfs"), 4);
    const pack = await templar([
      "pack",
      join(dir, "rootfs"),
      ...["--name", NAME, "--version", "13.8.1", "--out", join(dir, "out")],
      ...["--sign-key", join(dir, "keys", "maintainer.key.asc")],
    ]);
    expect(pack.code, pack.stderr).toBe(0);
    [registry, browser] = await Promise.all([
      startRegistry(join(dir, "storage"), config),
      launchChromium({ javaScriptEnabled: false }),
    ]);
    const push = await templar(["push", join(dir, "out"), "--registry", registry.url, "--token", token]);
    expect(push.code, push.stderr).toBe(0);
    page = await browser.context.newPage();
  }, 90_000);

  afterAll(async () => {
    await browser?.close();
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("template page: signer, keyring step, vztmpl-dl signature settings; the printed commands work", async () => {
    await page.goto(`${registry.url}/templates/${NAME}`);
    // biome-ignore lint/performance/useDomNodeTextContent: the rendered text, line breaks included, is what people read
    const text = await page.locator("main, body").first().innerText();
    expect(text).toContain(fingerprint);
    expect(text).toContain("Example Templates <templates@example.org>");
    expect(text).toContain(`curl -fsS ${registry.url}/keys/${fingerprint}.asc >> /etc/templar/trusted.asc`);
    expect(text).toContain("CHECK_TEMPLATE_SIG=yes");
    expect(text).toContain(`GPG_KEY=${fingerprint}`);
    await page.screenshot({
      path: join(process.env.TEMPLAR_SCREENSHOT_DIR ?? dir, "template-trust.png"),
      fullPage: true,
    });

    // The first code block run as printed (the keyring under a scratch /etc, a scratch cache).
    // biome-ignore lint/performance/useDomNodeTextContent: the rendered text, line breaks included, is what people read
    const first = await page.locator("pre code").first().innerText();
    const etc = join(dir, "etc");
    const cache = join(dir, "cache");
    await mkdir(cache);
    // The keyring step as printed; the pull itself runs through the built CLI below.
    const lines = first
      .split("\n")
      .filter((l) => l.trim() && !l.startsWith("templar ") && !l.startsWith("#"))
      .map((l) => l.replaceAll("/etc/templar", join(etc, "templar")));
    expect(lines.length).toBe(2);
    const run = await runProcess("bash", ["-e", "-c", lines.join("\n")]);
    expect(run.code, run.stderr).toBe(0);
    const trusted = await readFile(join(etc, "templar", "trusted.asc"), "utf8");
    expect(trusted).toContain("-----BEGIN PGP PUBLIC KEY BLOCK-----");
    const pull = await templar([
      "pull",
      NAME,
      "--registry",
      registry.url,
      "--dest",
      cache,
      "--keyring",
      join(etc, "templar", "trusted.asc"),
    ]);
    expect(pull.code, pull.stderr).toBe(0);
  });

  it("version page: signer, pushed beside created, each artifact's .asc", async () => {
    await page.goto(`${registry.url}/templates/${NAME}/13.8.1`);
    // biome-ignore lint/performance/useDomNodeTextContent: the rendered text, line breaks included, is what people read
    const text = await page.locator("body").innerText();
    expect(text).toMatch(/signed by\s+[0-9A-F]{40} Example Templates <templates@example\.org>/);
    expect(text).toMatch(/created\s+.*\n?pushed\s+/);
    const asc = page.locator('a:text-is(".asc")');
    expect(await asc.count()).toBe(2);
    const href = await asc.first().getAttribute("href");
    const res = await fetch(`${registry.url}${href}`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain("-----BEGIN PGP SIGNATURE-----");
    expect(text).toContain(`curl -fsS ${registry.url}/keys/${fingerprint}.asc >> /etc/templar/trusted.asc`);
    await page.screenshot({
      path: join(process.env.TEMPLAR_SCREENSHOT_DIR ?? dir, "version-trust.png"),
      fullPage: true,
    });
  });

  it("serves only keys the push policy holds; aplinfo's Infopage is the HTML page", async () => {
    expect((await fetch(`${registry.url}/keys/${"0".repeat(40)}.asc`)).status).toBe(404);
    expect((await fetch(`${registry.url}/keys/..%2Fregistry.yaml`)).status).toBe(404);
    const aplinfo = await (await fetch(`${registry.url}/aplinfo.dat`)).text();
    expect(aplinfo).toContain(`Infopage: ${registry.url}/templates/${NAME}/13.8.1`);
  });
});
