// Steps a person takes in the workbench and the chat panel, shared by the UI
// tests that go beyond the two-person conversation: joining through the
// prompts, typing in the panel, hiding and showing it, and reading its state.
import type { Frame, Page } from 'playwright-core';
import { findFrameWith, runCommand, type Person } from './harness';

export const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits for `check` to hold, polling; fails with `what` after `timeoutMs`. */
export async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (error) {
      lastError = error;
    }
    await delay(250);
  }
  const why = lastError instanceof Error ? ` (last error: ${lastError.message.split('\n')[0]})` : '';
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
}

/** Answers one input box of the Join flow: waits for text in the widget, types the value, presses Enter. */
export async function answerInputBox(page: Page, expected: string, value: string): Promise<void> {
  const widget = page.locator('.quick-input-widget');
  await eventually(`an input box saying "${expected}"`, async () => (await widget.isVisible()) && (await widget.innerText()).includes(expected), 15_000);
  const input = page.locator('.quick-input-widget input.input');
  await input.fill(value);
  await delay(200); // validation runs on input; Enter before it settles is ignored
  await input.press('Enter');
}

/**
 * Joins through the Join flow's prompts. `retries` answer the prompts that
 * follow a refused name, each waiting for its `expect` text (by default the
 * name prompt's "your name").
 */
export async function joinThroughPrompts(page: Page, address: string, name: string, room: string, retries: { name: string; expect?: string }[] = []): Promise<void> {
  await runCommand(page, 'Chat Room: Join Room');
  await answerInputBox(page, 'server address', address);
  await answerInputBox(page, 'your name', name);
  await answerInputBox(page, 'room', room);
  for (const retry of retries) await answerInputBox(page, retry.expect ?? 'your name', retry.name);
}

/** The chat panel's document (a webview is re-created each time it is shown, so look it up each time). */
export function chatFrame(page: Page, timeoutMs = 30_000): Promise<Frame> {
  return findFrameWith(page, '#messages', timeoutMs);
}

export async function panelText(page: Page): Promise<string> {
  return (await chatFrame(page)).locator('#app').innerText();
}

/** Types into the message box without sending. */
export async function typeDraft(page: Page, text: string): Promise<void> {
  const input = (await chatFrame(page)).locator('#input');
  await input.click();
  await input.fill(text);
}

export async function sendInPanel(page: Page, text: string): Promise<void> {
  const input = (await chatFrame(page)).locator('#input');
  await input.click();
  await input.fill(text);
  await input.press('Enter');
}

export async function draftInPanel(page: Page): Promise<string> {
  return (await chatFrame(page)).locator('#input').inputValue();
}

/** Texts of the rendered chat messages (each message's source text), in order. */
export async function messageTexts(page: Page): Promise<string[]> {
  const frame = await chatFrame(page);
  return frame.locator('#messages li.message .body').evaluateAll((bodies) => bodies.map((body) => body.getAttribute('data-text') ?? ''));
}

/** The send state ("sent" or "pending") of each of my own messages with this text; one entry per copy shown. */
export async function sendStateOf(page: Page, text: string): Promise<string[]> {
  const frame = await chatFrame(page);
  return frame.locator('#messages li.message.mine').evaluateAll(
    (items, wanted) =>
      items.filter((item) => item.querySelector('.body')?.getAttribute('data-text') === wanted).map((item) => (item.querySelector('.send-state')?.textContent ?? '').trim()),
    text,
  );
}

/** The editor tab of the chat panel (its label starts with "Chat"). */
export function chatTab(page: Page) {
  return page.locator('.tabs-container .tab', { has: page.locator('.label-name', { hasText: /^Chat/ }) }).first();
}

/**
 * Hides the panel the way a person does: with the panel focused, opens a new
 * untitled file, which lands in the panel's editor group and covers it.
 */
export async function hidePanelBehindAnEditor(page: Page): Promise<void> {
  await (await chatFrame(page)).locator('#input').click();
  await runCommand(page, 'File: New Untitled Text File');
  await eventually('the chat panel to be covered', async () => (await chatTab(page).getAttribute('aria-selected')) === 'false', 10_000);
}

/**
 * Hides the chat in the Panel the way a person does: puts the Panel away
 * (View: Hide Panel, Ctrl+J's other half), which takes the chat's view with it.
 */
export async function hideTheChatView(page: Page): Promise<void> {
  await (await chatFrame(page)).locator('#input').click();
  await runCommand(page, 'View: Hide Panel');
  await eventually('the Panel hidden', async () => !(await page.locator('.part.panel').isVisible()), 10_000);
}

/** Shows the chat's view again with Open Chat Panel (what the room's item in the status bar runs). */
export async function showTheChatView(page: Page): Promise<void> {
  await runCommand(page, 'Chat Room: Open Chat Panel');
  await eventually('the chat in the Panel', async () => (await page.locator('.part.panel').isVisible()) && (await page.locator('.part.panel .composite.title').innerText()).toUpperCase().includes('CHAT ROOM'), 10_000);
}

/** Shows the panel again by clicking its tab. */
export async function showPanelByTab(page: Page): Promise<void> {
  await chatTab(page).click();
  await eventually('the chat tab to be selected', async () => (await chatTab(page).getAttribute('aria-selected')) === 'true', 10_000);
}

/**
 * Reloads the window the way VS Code does it (Developer: Reload Window), which
 * in code-server is a real reload of the browser page, and waits for the chat
 * tab to come back.
 *
 * Why not page.reload() straight away: a bare browser reload races the
 * workbench's own shutdown. The workbench writes its editor layout during
 * unload, and if the extension host connection has already gone, the webview
 * serializer is no longer registered and the chat panel is left out of the
 * layout (seen in about one run in three). The command runs the workbench's
 * shutdown first, which is what a person gets from Reload Window or F5 with
 * the workbench focused, so the test is about our serializer, not that race.
 */
export async function reloadWorkbench(person: Person): Promise<void> {
  const reloaded = person.page.waitForEvent('framenavigated', { predicate: (frame) => frame === person.page.mainFrame(), timeout: 60_000 });
  await runCommand(person.page, 'Developer: Reload Window');
  await reloaded;
  await person.page.waitForSelector('.monaco-workbench', { timeout: 60_000 });
  // Back as it was: a restored tab, or the view in the Panel.
  await eventually(
    'the chat back after the reload',
    async () => (await chatTab(person.page).count()) === 1 || (await person.page.locator('.part.panel .composite.title').innerText().catch(() => '')).toUpperCase().includes('CHAT ROOM'),
    30_000,
  );
  await chatFrame(person.page, 45_000);
}
