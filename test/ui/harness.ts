// Helpers for UI tests: each "person" is a code-server instance of their own
// (own user data, own extensions folder with the packaged chat-room.vsix
// installed as a user would) viewed in their own Chromium browser context.
// Tests drive the workbench through the command palette and read webviews by
// searching every frame on the page.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, Frame, Page } from 'playwright-core';
import { closeChromium, launchChromium } from '../support/browser';
import { repoRoot, startCodeServer, type CodeServerHost } from '../support/codeServerHost';

export { launchChromium, closeChromium };

// Callbacks passed to frame.evaluate() run in the browser; the node tsconfig
// has no DOM types, so the little of the page they touch is named here.
declare const document: { body: { children: { length: number }; innerText: string } | null };

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function packagedVsixPath(): string {
  const vsix = join(repoRoot(), 'chat-room.vsix');
  if (!existsSync(vsix)) throw new Error(`${vsix} is missing: run \`npm run package\` first`);
  return vsix;
}

export function artifactsDir(): string {
  const dir = join(repoRoot(), 'artifacts', 'ui');
  mkdirSync(dir, { recursive: true });
  return dir;
}

export interface Person {
  readonly name: string;
  readonly host: CodeServerHost;
  readonly context: BrowserContext;
  readonly page: Page;
  /** Messages the workbench logged as errors, for failure reports. */
  readonly consoleErrors: string[];
  /**
   * Closes this person's VS Code (code-server and its extension hosts) and
   * nothing else: a chat server they started keeps running, as it should.
   */
  closeWindow(): Promise<void>;
  /** Closes their VS Code and stops a chat server it left running. Safe to call twice. */
  stop(): Promise<void>;
}

export interface PersonOptions {
  /** Extra user settings for this person's VS Code. */
  settings?: Record<string, unknown>;
  /** Extra environment for this person's code-server and extension host. */
  env?: Record<string, string>;
  /** Install the packaged extension (default true). */
  installExtension?: boolean;
}

/**
 * Starts a code-server for one person with the packaged extension installed,
 * opens the workbench in a fresh browser context and waits until it is usable.
 */
export async function startPerson(browser: Browser, name: string, options: PersonOptions = {}): Promise<Person> {
  const host = await startCodeServer({
    label: name,
    ...(options.installExtension === false ? {} : { vsixPath: packagedVsixPath() }),
    ...(options.env ? { env: options.env } : {}),
    ...(options.settings ? { settings: options.settings } : {}),
  });
  let context: BrowserContext | undefined;
  try {
    context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();
    const consoleErrors: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error') consoleErrors.push(message.text());
    });
    page.on('pageerror', (error) => consoleErrors.push(error.message));
    await openWorkbench(page, host);
    const openedContext = context;
    let closed: Promise<void> | undefined;
    let stopped: Promise<void> | undefined;
    // Read before the temp folders go: the server outlives the window, not the test.
    let serverToStop: ChatServerRecord | undefined;
    const closeWindow = () => {
      closed ??= (async () => {
        serverToStop = chatServerRecord(host);
        await openedContext.close().catch(() => undefined);
        // The temp folders stay until stop(): a chat server still running keeps its history there.
        await host.stopProcesses();
      })();
      return closed;
    };
    return {
      name,
      host,
      context,
      page,
      consoleErrors,
      closeWindow,
      stop() {
        stopped ??= (async () => {
          const record = chatServerRecord(host);
          await closeWindow();
          await stopChatServer(record ?? serverToStop);
          await host.stop();
        })();
        return stopped;
      },
    };
  } catch (error) {
    await context?.close().catch(() => undefined);
    await host.stop();
    throw error;
  }
}

/** Opens the workbench for the host's workspace and waits until it takes input. */
export async function openWorkbench(page: Page, host: CodeServerHost, timeoutMs = 90_000): Promise<void> {
  await page.goto(host.workbenchUrl(), { timeout: timeoutMs });
  await page.waitForSelector('.monaco-workbench', { timeout: timeoutMs });
  await page.waitForSelector('.part.statusbar', { timeout: timeoutMs });
  // The extension host registers contributions a moment after the workbench
  // paints; commands typed before that find nothing.
  await delay(3_000);
}

/** What the extension records about the chat server it runs for this person (server.json in its global storage). */
export interface ChatServerRecord {
  pid: number;
  port: number;
  logFile: string;
  leaseFile: string;
}

/** The folder where this person's extension keeps its chat server: history, log, lease and record. */
export function chatServerDataDir(host: CodeServerHost): string {
  return join(host.userDataDir, 'User', 'globalStorage', 'chat-room.chat-room', 'server-data');
}

export function chatServerRecord(host: CodeServerHost): ChatServerRecord | undefined {
  const dataDir = chatServerDataDir(host);
  try {
    const record = JSON.parse(readFileSync(join(dataDir, 'server.json'), 'utf8')) as { pid: number; port: number; logFile: string };
    return { pid: record.pid, port: record.port, logFile: record.logFile, leaseFile: join(dataDir, 'lease.json') };
  } catch {
    return undefined;
  }
}

function isChatServer(record: ChatServerRecord): boolean {
  try {
    return readFileSync(`/proc/${record.pid}/cmdline`, 'utf8').includes(record.leaseFile);
  } catch {
    return false;
  }
}

/** Stops, by its pid, a chat server that outlived its window (only if that pid is still that server). */
export async function stopChatServer(record: ChatServerRecord | undefined): Promise<void> {
  if (!record || !isChatServer(record)) return;
  process.kill(record.pid, 'SIGTERM');
  const deadline = Date.now() + 5_000;
  while (isChatServer(record) && Date.now() < deadline) await delay(100);
  if (isChatServer(record)) process.kill(record.pid, 'SIGKILL');
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

const paletteInput = '.quick-input-widget input.input';
const paletteRows = '.quick-input-widget .quick-input-list .monaco-list-row';

async function openPalette(page: Page, query: string): Promise<void> {
  await page.keyboard.press('Escape');
  await page.keyboard.press('F1');
  const input = page.locator(paletteInput);
  await input.waitFor({ state: 'visible', timeout: 10_000 });
  // F1 opens the palette in command mode, with ">" already typed.
  await input.fill(`>${query}`);
}

async function visibleRowLabels(page: Page): Promise<string[]> {
  return page.locator(paletteRows).evaluateAll((rows) =>
    rows.map((row) => (row.getAttribute('aria-label') ?? row.textContent ?? '').trim()),
  );
}

/**
 * Lists the command palette entries matching `query`. Retries for a while,
 * because commands appear only once the extension host has registered them.
 */
export async function paletteEntries(page: Page, query: string, expectAtLeast = 1, timeoutMs = 20_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  let labels: string[] = [];
  try {
    while (Date.now() < deadline) {
      await openPalette(page, query);
      await delay(500);
      labels = await visibleRowLabels(page);
      if (labels.length >= expectAtLeast) break;
      await delay(1_000);
    }
  } finally {
    await page.keyboard.press('Escape');
  }
  return labels;
}

/**
 * Runs a command as a person would: F1, type its full title
 * ("Chat Room: Open Chat Panel"), wait for the matching entry, press Enter.
 */
export async function runCommand(page: Page, title: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    await openPalette(page, title);
    // Exactly this title, so "Join Room" never picks a longer "Join Room …" entry.
    const exactLabel = page.locator('.label-name', { hasText: new RegExp(`^${escapeRegExp(title)}$`) });
    const match = page.locator(paletteRows).filter({ has: exactLabel }).first();
    try {
      await match.waitFor({ state: 'visible', timeout: 3_000 });
    } catch {
      continue;
    }
    const focusedIsMatch = (await page.locator(`${paletteRows}.focused`).filter({ has: exactLabel }).count()) > 0;
    if (focusedIsMatch) await page.keyboard.press('Enter');
    else await match.click();
    await page.locator(paletteInput).waitFor({ state: 'hidden', timeout: 5_000 }).catch(() => undefined);
    return;
  }
  await page.keyboard.press('Escape');
  throw new Error(`command "${title}" did not appear in the command palette within ${timeoutMs}ms`);
}

/**
 * Finds the frame that holds `selector`. A webview's document sits two iframes
 * deep (iframe.webview, then its active frame), so every frame on the page is
 * searched until one matches or the time limit passes.
 */
export async function findFrameWith(page: Page, selector: string, timeoutMs = 20_000): Promise<Frame> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const frame of page.frames()) {
      try {
        if (await frame.$(selector)) return frame;
      } catch {
        // the frame navigated or detached while we looked; try the others
      }
    }
    await delay(250);
  }
  throw new Error(`no frame holds "${selector}" after ${timeoutMs}ms`);
}

/**
 * Frames that render a webview's own document: the inner frame of each
 * webview (its URL is the host shell's fake.html), not the workbench and not
 * the webview's outer index.html.
 */
export function webviewContentFrames(page: Page): Frame[] {
  return page.frames().filter((frame) => /\/webview\/browser\/pre\/fake\.html/.test(frame.url()));
}

/** Waits for a webview whose document has rendered something, and returns its frame. */
export async function waitForWebviewContent(page: Page, timeoutMs = 20_000): Promise<Frame> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const frame of webviewContentFrames(page)) {
      try {
        if (await frame.evaluate(() => (document.body?.children.length ?? 0) > 0)) return frame;
      } catch {
        // the frame was replaced while loading; look again
      }
    }
    await delay(250);
  }
  throw new Error(`no webview rendered content within ${timeoutMs}ms`);
}

/** The visible text of a frame's document, trimmed. */
export async function frameText(frame: Frame): Promise<string> {
  return frame.evaluate(() => (document.body?.innerText ?? '').trim());
}

/**
 * The text of a modal dialog if one appears within `waitMs` (a command that
 * throws is reported this way), or undefined.
 */
export async function dialogText(page: Page, waitMs = 1_000): Promise<string | undefined> {
  const dialog = page.locator('.monaco-dialog-box');
  try {
    await dialog.first().waitFor({ state: 'visible', timeout: waitMs });
  } catch {
    return undefined;
  }
  return (await dialog.first().innerText()).replace(/\s+/g, ' ').trim();
}

/** Text of the workbench's notification toasts, e.g. to read a command's error. */
export async function notificationTexts(page: Page): Promise<string[]> {
  return page.locator('.notifications-toasts .notification-list-item-message').allInnerTexts();
}

/**
 * Picks a colour theme as a person does ("Preferences: Color Theme", then its
 * label), and waits until the workbench wears it.
 */
export async function chooseColorTheme(page: Page, label: string): Promise<void> {
  await runCommand(page, 'Preferences: Color Theme');
  await page.locator(paletteInput).fill(label);
  const exactLabel = page.locator('.label-name', { hasText: new RegExp(`^${escapeRegExp(label)}$`) });
  const row = page.locator(paletteRows).filter({ has: exactLabel }).first();
  await row.waitFor({ state: 'visible', timeout: 10_000 });
  await row.click();
  await page.locator(paletteInput).waitFor({ state: 'hidden', timeout: 5_000 }).catch(() => undefined);
  await delay(1_000); // the webviews restyle a moment after the workbench
}

/** Saves a PNG of the whole page under artifacts/ui/ and returns its path. */
export async function saveScreenshot(page: Page, name: string): Promise<string> {
  const path = join(artifactsDir(), `${name.replace(/[^\w.-]+/g, '-')}.png`);
  await page.screenshot({ path, timeout: 30_000 });
  return path;
}
