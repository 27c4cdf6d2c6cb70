// Debian's Chromium driven by playwright-core. Playwright's own browser
// download is not reachable from these machines, so we always point it at the
// system binary (override with CHROMIUM_PATH).
import { chromium, type Browser } from 'playwright-core';
import { existsSync } from 'node:fs';

export function chromiumPath(): string {
  const path = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
  if (!existsSync(path)) {
    throw new Error(`Chromium not found at ${path}; install it (apt-get install chromium) or set CHROMIUM_PATH`);
  }
  return path;
}

export async function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath(),
    headless: process.env.CHAT_ROOM_HEADED !== '1',
    timeout: 60_000,
    args: [
      // root in CI containers cannot use the setuid sandbox
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      // nothing outside loopback is reachable, so stop Chromium from trying
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
    ],
  });
}

/**
 * Closes the browser within a time limit. playwright-core launched Chromium as
 * its own child and kills it by PID when this node process exits, so a close
 * that hangs cannot leave the browser behind.
 */
export async function closeChromium(browser: Browser): Promise<void> {
  await Promise.race([
    browser.close().catch(() => undefined),
    new Promise<void>((resolve) => setTimeout(resolve, 10_000)),
  ]);
}
