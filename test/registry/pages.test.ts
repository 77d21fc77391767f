import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Manifest } from "../../common/manifest.js";
import { serializeManifest } from "../../common/manifest-files.js";
import { type Browser, haveChromium, launchChromium } from "../helpers/chromium.js";
import { makeTemplate, pushTemplate, startTestRegistry, type TestRegistry } from "../helpers/registry.js";
import { createToken, type RegistryProcess, startRegistry, templar } from "../helpers/registry-process.js";
import { haveTools } from "../helpers/require-tool.js";
import { makeTree, packTemplate } from "../helpers/template-fixture.js";

/**
 * The pages for people in a real headless Chromium against a real `templar serve` on
 * 127.0.0.1:0, with JavaScript switched off (the pages must not need it): catalog, facets,
 * click-through to a template and a version, the package filter form, HTML escaping of what
 * pushers wrote, the 404 page, download links, and pages on a registry without anonymous pull.
 */
const ready = haveChromium() && haveTools("tar", "gzip", "zstd");

const XSS = `<img src=x onerror="document.title='pwned'"><script>document.title='pwned'</script>"'&`;
const DEBIAN = "debian-13-x86_64-minimal";
const CENTOS = "centos-10-x86_64";
const EVIL = "evil-1-aarch64";

const PACKAGES = [
  "bash",
  "coreutils",
  "libc6",
  "openssh-client",
  "openssh-server",
  "systemd",
  ...Array.from({ length: 40 }, (_, i) => `libfiller${i}`),
].map((name) => ({ name, version: "1.0-1", arch: "amd64" }));

describe.skipIf(!ready)("registry pages in headless Chromium", () => {
  let dir: string;
  let registry: RegistryProcess;
  let closed: RegistryProcess;
  let pullToken: string;
  let browser: Browser;
  let page: Page;
  const consoleErrors: string[] = [];
  const manifests = new Map<string, Manifest>();

  /** Packs a tiny tree, fills in what a build would record, pushes it. */
  async function publish(name: string, version: string, fields: Partial<Manifest>, token: string) {
    const tree = join(dir, `tree-${name}-${version}`);
    await makeTree(tree, 4, `${name}-${version}`);
    const t = await packTemplate(tree, join(dir, `out-${name}-${version}`), name, version);
    const manifest = { ...t.manifest, ...fields } as Manifest;
    await writeFile(t.manifestPath, serializeManifest(manifest));
    const pushed = await templar(["push", t.outDir, "--registry", registry.url], { TEMPLAR_TOKEN: token });
    expect(pushed.code, pushed.stderr).toBe(0);
    manifests.set(`${name}@${version}`, manifest);
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "templar-pages-"));
    const storage = join(dir, "storage");
    const config = join(dir, "registry.yaml");
    await writeFile(config, "gc:\n  interval: 0\n");
    const pushToken = createToken(config, "push:*");
    // The same storage behind a second process that refuses anonymous pull.
    const closedConfig = join(dir, "closed.yaml");
    await writeFile(closedConfig, "anonymousPull: false\ngc:\n  interval: 0\n");
    pullToken = createToken(closedConfig, "pull:debian-*");
    [registry, closed, browser] = await Promise.all([
      startRegistry(storage, config),
      startRegistry(storage, closedConfig),
      launchChromium({ javaScriptEnabled: false }),
    ]);

    const debian = {
      distro: "debian",
      release: "13",
      arch: "x86_64",
      flavour: "minimal",
      description: "Debian 13 (trixie), minimal",
      source: {
        method: "debootstrap",
        suite: "trixie",
        inputs: [{ uri: "InRelease", sha256: "a".repeat(64), verified: "apt-release" }],
      },
      packages: PACKAGES,
    };
    const evil = {
      distro: "evil",
      arch: "aarch64",
      description: XSS,
      packages: [{ name: "<b>bold</b>", version: XSS, arch: "arm64" }],
    };
    await Promise.all([
      publish(DEBIAN, "13.1.0", debian, pushToken),
      publish(DEBIAN, "13.2.0", debian, pushToken),
      publish(CENTOS, "10.0.0", { distro: "centos", release: "10", arch: "x86_64" }, pushToken),
      publish(EVIL, "1.0.0", evil, pushToken),
    ]);

    page = await browser.context.newPage();
    page.on("console", (m) => {
      if (m.type() === "error") consoleErrors.push(m.text());
    });
  });

  afterAll(async () => {
    await browser?.close();
    await registry?.stop();
    await closed?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("shows the catalog grouped by distro, with latest versions and sizes", async () => {
    const res = await page.goto(`${registry.url}/`);
    expect(res?.status()).toBe(200);
    expect(res?.headers()["content-security-policy"]).toContain("default-src 'none'");
    await expect(page.title()).resolves.toContain("Templates");
    const headings = await page.locator("main h2").allTextContents();
    expect(headings).toEqual(["centos", "debian", "evil"]);
    const debianRow = page.locator("table.catalog tr", { hasText: DEBIAN });
    await expect(debianRow.locator("td").nth(4).textContent()).resolves.toBe("13.2.0");
    await expect(debianRow.locator("td").nth(5).textContent()).resolves.toBe("2");
    const sizes = await debianRow.locator("td").nth(6).textContent();
    expect(sizes).toMatch(/tar\.gz \d+(\.\d)? KiB/);
    expect(sizes).toMatch(/tar\.zst \d+(\.\d)? KiB/);
    // The inline stylesheet is allowed by the page's policy (a blocked style logs an error).
    expect(consoleErrors.filter((e) => e.includes("Content Security Policy"))).toEqual([]);
  });

  it("filters by distro and arch through plain links", async () => {
    await page.goto(`${registry.url}/`);
    await page.locator("#facet-arch a", { hasText: "aarch64" }).click();
    expect(new URL(page.url()).search).toBe("?arch=aarch64");
    await expect(page.locator("table.catalog tbody tr").count()).resolves.toBe(1);
    await expect(page.locator("table.catalog").textContent()).resolves.toContain(EVIL);

    await page.goto(`${registry.url}/`);
    await page.locator("#facet-distro a", { hasText: "centos" }).click();
    expect(new URL(page.url()).search).toBe("?distro=centos");
    const names = await page.locator("table.catalog tbody tr td:first-child").allTextContents();
    expect(names).toEqual([CENTOS]);
    await page.locator("#facet-distro a", { hasText: "all" }).click();
    await expect(page.locator("table.catalog tbody tr").count()).resolves.toBe(3);
  });

  it("clicks through to a template (versions newest first) and a version (manifest details)", async () => {
    await page.goto(`${registry.url}/`);
    await page.locator("table.catalog a", { hasText: DEBIAN }).click();
    expect(new URL(page.url()).pathname).toBe(`/templates/${DEBIAN}`);
    const versions = await page.locator("table.versions tbody tr td:first-child").allTextContents();
    expect(versions).toEqual(["13.2.0", "13.1.0"]);
    const newest = page.locator("table.versions tbody tr").first();
    await expect(newest.locator(".tag").allTextContents()).resolves.toEqual(["latest"]);
    await expect(page.locator("main pre").first().textContent()).resolves.toContain(
      `templar pull ${DEBIAN}@13.2.0 --registry ${registry.url}`,
    );

    await page.locator("table.versions a", { hasText: "13.1.0" }).click();
    expect(new URL(page.url()).pathname).toBe(`/templates/${DEBIAN}/13.1.0`);
    const main = (await page.locator("main").textContent()) ?? "";
    const m = manifests.get(`${DEBIAN}@13.1.0`)!;
    for (const a of m.artifacts) expect(main).toContain(a.digest);
    expect(main).toContain(m.rootfs.tarSha256);
    expect(main).toContain("apt-release");
    expect(main).toContain("trixie");
    await expect(page.locator("#package-count").textContent()).resolves.toBe(`${PACKAGES.length} packages`);
  });

  it("filters the package list with a GET form, without JavaScript", async () => {
    await page.goto(`${registry.url}/templates/${DEBIAN}/13.2.0`);
    await page.locator("form.filter input[name=q]").fill("openssh");
    await page.locator("form.filter button").click();
    await page.waitForURL(/\?q=openssh/);
    const names = await page.locator("table.packages tbody td:first-child").allTextContents();
    expect(names).toEqual(["openssh-client", "openssh-server"]);
    await expect(page.locator("#package-count").textContent()).resolves.toContain(
      `2 of ${PACKAGES.length} packages`,
    );
    await expect(page.locator("form.filter input[name=q]").inputValue()).resolves.toBe("openssh");
  });

  it("shows what pushers wrote as text: no element, no script from a description or package", async () => {
    for (const path of ["/", `/templates/${EVIL}`, `/templates/${EVIL}/1.0.0`]) {
      await page.goto(`${registry.url}${path}`);
      await expect(page.locator("img").count()).resolves.toBe(0);
      await expect(page.locator("script").count()).resolves.toBe(0);
      await expect(page.locator("b").count()).resolves.toBe(0);
      expect(await page.locator("main").textContent()).toContain(XSS);
      expect(await page.title()).not.toContain("pwned");
    }
    await expect(page.locator("table.packages tbody td").first().textContent()).resolves.toBe("<b>bold</b>");
    // A query echoed back into the page is escaped too.
    await page.goto(`${registry.url}/templates/${EVIL}/1.0.0?q=${encodeURIComponent(`"><img src=x>`)}`);
    await expect(page.locator("img").count()).resolves.toBe(0);
    await expect(page.locator("form.filter input[name=q]").inputValue()).resolves.toBe(`"><img src=x>`);
  });

  it("answers unknown names and versions with a 404 page, and tags redirect to their version", async () => {
    const unknown = await page.goto(`${registry.url}/templates/nosuch-1-x86_64`);
    expect(unknown?.status()).toBe(404);
    expect(unknown?.headers()["content-type"]).toContain("text/html");
    await expect(page.locator("h1").textContent()).resolves.toBe("Not found");
    const version = await page.goto(`${registry.url}/templates/${DEBIAN}/9.9.9`);
    expect(version?.status()).toBe(404);
    const deeper = await page.goto(`${registry.url}/templates/${DEBIAN}/13.2.0/nothing/here`);
    expect(deeper?.status()).toBe(404);
    await expect(page.locator("h1").textContent()).resolves.toBe("Not found");
    const bad = await page.goto(`${registry.url}/templates/Not..Valid`);
    expect(bad?.status()).toBe(400);
    await page.goto(`${registry.url}/templates/${DEBIAN}/latest?q=ssh`);
    expect(new URL(page.url()).pathname).toBe(`/templates/${DEBIAN}/13.2.0`);
    expect(new URL(page.url()).search).toBe("?q=ssh");
    await page.goto(`${registry.url}/templates/${DEBIAN}/${encodeURIComponent("~13.1")}`);
    expect(new URL(page.url()).pathname).toBe(`/templates/${DEBIAN}/13.1.0`);
  });

  it("links downloads to blobs whose bytes match the digest shown", async () => {
    await page.goto(`${registry.url}/templates/${DEBIAN}/13.2.0`);
    const link = page.locator("table.artifacts a", { hasText: "download" }).first();
    const href = (await link.getAttribute("href"))!;
    const digest = await page.locator("table.artifacts tbody tr").first().locator("code").textContent();
    const bytes = Buffer.from(await (await fetch(`${registry.url}${href}`)).arrayBuffer());
    expect(`sha256:${createHash("sha256").update(bytes).digest("hex")}`).toBe(digest);
    expect(await link.getAttribute("download")).toMatch(new RegExp(`^${DEBIAN}-13\\.2\\.0\\.tar\\.`));
  });

  it("needs a pull token when anonymous pull is off, and shows only what the token may pull", async () => {
    const anonymous = await page.goto(`${closed.url}/`);
    expect(anonymous?.status()).toBe(401);
    expect(anonymous?.headers()["www-authenticate"]).toContain("Bearer");
    await expect(page.locator("h1").textContent()).resolves.toBe("Token needed");

    const withToken = await browser.context.newPage();
    await withToken.setExtraHTTPHeaders({ Authorization: `Bearer ${pullToken}` });
    expect((await withToken.goto(`${closed.url}/`))?.status()).toBe(200);
    const names = await withToken.locator("table.catalog tbody tr td:first-child").allTextContents();
    expect(names).toEqual([DEBIAN]);
    expect((await withToken.goto(`${closed.url}/templates/${CENTOS}`))?.status()).toBe(403);
    const wrong = await withToken.context().request.get(`${closed.url}/`, {
      headers: { Authorization: "Bearer tmpl_wrong" },
    });
    expect(wrong.status()).toBe(401);
    await withToken.close();
    // No token ever reaches the log.
    expect(closed.log.join("\n")).not.toContain(pullToken);
  });

  it("renders a decent-looking page (screenshot)", async () => {
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.goto(`${registry.url}/templates/${DEBIAN}/13.2.0?q=lib`);
    const file = join(process.env.TEMPLAR_SCREENSHOT_DIR ?? dir, "version-page.png");
    await page.screenshot({ path: file, fullPage: true });
    const png = await readFile(file);
    expect(png.subarray(1, 4).toString("latin1")).toBe("PNG");
    expect((await stat(file)).size).toBeGreaterThan(20_000);
    for (const [name, path] of [
      ["catalog", "/"],
      ["template", `/templates/${DEBIAN}`],
    ]) {
      await page.goto(`${registry.url}${path}`);
      await page.screenshot({ path: join(process.env.TEMPLAR_SCREENSHOT_DIR ?? dir, `${name}.png`) });
    }
  });
});

/**
 * The commands the pages print for copy and paste, run by a real shell (with the programs they
 * call replaced by functions that print their arguments): each value arrives as one literal
 * argument, whatever it holds. The request's Host header is the one value a visitor controls
 * (pages build commands from it), so it carries the shell syntax here.
 */
describe.skipIf(!haveTools("sh"))("registry pages: shell commands", () => {
  let r: TestRegistry;
  const NAME = "debian-13-x86_64-shell";
  const HOST = "evil$(id)`id`;id";
  const template = makeTemplate(NAME, "13.0.0", { blobs: [randomBytes(1000), randomBytes(1000)] });
  const [zst, gz] = template.blobs.map((b) => `sha256:${createHash("sha256").update(b).digest("hex")}`);

  beforeAll(async () => {
    r = await startTestRegistry({ tokens: { push: ["push:*"] } });
    expect((await pushTemplate(r.url, r.tokens.push!, template)).status).toBe(201);
  });
  afterAll(async () => r?.close());

  /** GET with a Host header of our choosing (fetch does not let one set it). */
  function getPage(path: string): Promise<string> {
    const { port } = new URL(r.url);
    return new Promise((resolve, reject) => {
      http
        .get({ host: "127.0.0.1", port, path, headers: { host: `${HOST}:${port}` } }, (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (d) => {
            body += d;
          });
          res.on("end", () =>
            res.statusCode === 200 ? resolve(body) : reject(new Error(`${res.statusCode} ${body}`)),
          );
        })
        .on("error", reject);
    });
  }

  /** The text of each <pre><code> block, as a browser shows it (and a user copies it). */
  function commands(page: string): string[] {
    const decode = (text: string) =>
      text
        .replaceAll("&lt;", "<")
        .replaceAll("&gt;", ">")
        .replaceAll("&quot;", '"')
        .replaceAll("&#39;", "'")
        .replaceAll("&amp;", "&");
    return [...page.matchAll(/<pre><code>([\s\S]*?)<\/code><\/pre>/g)].map((m) => decode(m[1]!));
  }

  /**
   * Runs a block in sh with the programs it calls replaced by functions that print their
   * name (CMD), arguments (ARG) and input (IN); `$TEMPLATE_REPOS` is printed last (VAR).
   */
  function run(block: string): string[] {
    const stubs = ["templar", "curl", "pvesh", "sha256sum", "skopeo", "podman"].map(
      (c) =>
        `${c}() { printf 'CMD %s\\n' ${c}; for a in "$@"; do printf 'ARG %s\\n' "$a"; done;` +
        ` ${c === "sha256sum" ? `while read -r l; do printf 'IN %s\\n' "$l"; done;` : ""} }`,
    );
    const script = [...stubs, "hostname() { echo node1; }", block, `printf 'VAR %s\\n' "$TEMPLATE_REPOS"`];
    const result = spawnSync("sh", ["-c", script.join("\n")], { encoding: "utf8" });
    expect(result.stderr).toBe("");
    return result.stdout.split("\n").filter(Boolean);
  }

  it("quotes the registry address and every other value in the commands the pages print", async () => {
    const { port } = new URL(r.url);
    const origin = `http://${HOST}:${port}`;
    const version = commands(await getPage(`/templates/${NAME}/13.0.0`)).map(run);
    expect(version).toEqual([
      ["CMD templar", "ARG pull", `ARG ${NAME}@13.0.0`, "ARG --registry", `ARG ${origin}`, "VAR "],
      [
        "CMD curl",
        "ARG -fo",
        `ARG /vz/template/cache/${NAME}.tar.gz`,
        `ARG ${origin}/v1/blobs/${gz}`,
        "CMD sha256sum",
        "ARG -c",
        `IN ${gz!.slice(7)}  /vz/template/cache/${NAME}.tar.gz`,
        "VAR ",
      ],
      [
        "CMD pvesh",
        ...["create", "/nodes/node1/storage/local/download-url", "--content", "vztmpl"].map(
          (a) => `ARG ${a}`,
        ),
        ...["--filename", `${NAME}_13.0.0_amd64.tar.zst`, "--url", `${origin}/v1/blobs/${zst}`].map(
          (a) => `ARG ${a}`,
        ),
        ...["--checksum", zst!.slice(7), "--checksum-algorithm", "sha256"].map((a) => `ARG ${a}`),
        "VAR ",
      ],
    ]);

    const [pulls, repos, ociPvesh, ociOthers] = commands(await getPage(`/templates/${NAME}`)).map(run);
    const pull = (ref: string) => [
      "CMD templar",
      "ARG pull",
      `ARG ${ref}`,
      "ARG --registry",
      `ARG ${origin}`,
    ];
    expect(pulls).toEqual([...pull(NAME), ...pull(`${NAME}@13.0.0`), ...pull(`${NAME}@^13`), "VAR "]);
    expect(repos).toEqual([`VAR ${origin}/precreated`]);
    const reference = `${new URL(origin).host}/${NAME}:13.0.0`;
    expect(ociPvesh).toEqual([
      "CMD pvesh",
      ...["create", "/nodes/node1/storage/local/oci-registry-pull", "--reference", reference].map(
        (a) => `ARG ${a}`,
      ),
      "VAR ",
    ]);
    expect(ociOthers).toEqual([
      ...["CMD skopeo", "ARG copy", `ARG docker://${reference}`, `ARG oci-archive:${NAME}.tar`],
      ...["CMD podman", "ARG pull", `ARG ${reference}`, "VAR "],
    ]);

    // The catalog's commands have placeholders (not runnable): the address is one quoted word.
    const catalog = await getPage("/");
    expect(catalog).toContain(`--registry &#39;${origin}&#39;`);
  });
});
