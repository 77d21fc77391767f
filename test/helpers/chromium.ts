import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, type BrowserContextOptions, chromium } from "playwright-core";

/** Debian's `chromium` package; playwright-core never downloads a browser of its own. */
export const CHROMIUM = "/usr/bin/chromium";

/**
 * True when the system Chromium is there. Otherwise it prints why the caller skips, or throws
 * under CI=true (.ci/run installs the `chromium` package).
 */
export function haveChromium(): boolean {
  if (existsSync(CHROMIUM)) return true;
  const message = `missing ${CHROMIUM} (Debian package chromium)`;
  if (process.env.CI === "true") throw new Error(`${message}: CI must have it, see .ci/run`);
  console.warn(`skipping: ${message}`);
  return false;
}

export interface Browser {
  context: BrowserContext;
  close(): Promise<void>;
}

/** Headless Chromium with a fresh profile and nothing that phones home; close() removes the profile. */
export async function launchChromium(options: BrowserContextOptions = {}): Promise<Browser> {
  const profile = await mkdtemp(join(tmpdir(), "templar-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    ...options,
  });
  return {
    context,
    close: async () => {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}
