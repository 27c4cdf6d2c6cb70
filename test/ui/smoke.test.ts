// Proves the UI pipeline end to end: code-server with the packaged .vsix
// installed, Debian Chromium driven by playwright-core, the command palette,
// a webview, screenshots, and two people at once.
import * as assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import type { Browser } from 'playwright-core';
import {
  closeChromium,
  dialogText,
  findFrameWith,
  frameText,
  launchChromium,
  paletteEntries,
  runCommand,
  saveScreenshot,
  startPerson,
  type Person,
} from './harness';

describe('UI pipeline (code-server + Chromium + packaged extension)', function () {
  this.timeout(180_000);
  let browser: Browser | undefined;
  let alice: Person | undefined;

  before(async () => {
    browser = await launchChromium();
    alice = await startPerson(browser, 'alice');
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && alice) {
      await saveScreenshot(alice.page, `failed-${this.currentTest.title}`).catch(() => undefined);
    }
  });

  after(async () => {
    await alice?.stop();
    if (browser) await closeChromium(browser);
  });

  it('lists the Chat Room commands in the command palette', async () => {
    const entries = await paletteEntries(alice!.page, 'Chat Room', 2);
    assert.ok(entries.some((label) => label.startsWith('Chat Room: Start Chat Server')), `palette: ${entries.join(' | ')}`);
    assert.ok(entries.some((label) => label.startsWith('Chat Room: Join Room')), `palette: ${entries.join(' | ')}`);
  });

  it('opens the chat as a view in the Panel, welcoming a new user (no "Disconnected"), and saves a screenshot', async () => {
    const page = alice!.page;
    await runCommand(page, 'Chat Room: Open Chat Panel');
    const error = await dialogText(page, 1_500);
    assert.equal(error, undefined, `the command reported: ${error}`);
    const frame = await findFrameWith(page, '#welcome');
    const shown = await frameText(frame);
    assert.ok(shown.length > 0, 'the chat panel shows no text');
    // In the Panel, under its own view container (not an editor tab).
    assert.equal(await page.locator('.part.panel .pane-header', { hasText: 'Chat Room' }).count() + (await page.locator('.part.panel .composite.title', { hasText: 'Chat Room' }).count()) > 0, true, 'the chat is in the Panel');
    assert.equal(await page.locator('.part.editor .tab', { hasText: 'Chat' }).count(), 0, 'no editor tab');
    const welcome = await frame.locator('#welcome button').allInnerTexts();
    assert.deepEqual(welcome.map((label) => label.trim()), ['Start a Server', 'Join a Room', 'Paste an Invite']);
    assert.equal(await frame.locator('#connection').count(), 0, 'no connection line, so no "Disconnected"');
    assert.ok(!/disconnected/i.test(shown), shown);
    const screenshot = await saveScreenshot(page, 'smoke-chat-panel');
    assert.ok(existsSync(screenshot) && statSync(screenshot).size > 10_000, `screenshot ${screenshot} is missing or empty`);
  });

  it('gives a second person a separate VS Code in a separate browser context', async () => {
    const bob = await startPerson(browser!, 'bob');
    try {
      assert.notEqual(bob.host.port, alice!.host.port);
      assert.notEqual(bob.host.userDataDir, alice!.host.userDataDir);
      assert.notEqual(bob.host.extensionsDir, alice!.host.extensionsDir);
      assert.notEqual(bob.context, alice!.context);
      const entries = await paletteEntries(bob.page, 'Chat Room: Join Room', 1);
      assert.ok(entries.some((label) => label.startsWith('Chat Room: Join Room')), `bob's palette: ${entries.join(' | ')}`);
      await saveScreenshot(bob.page, 'smoke-second-person');
    } finally {
      await bob.stop();
    }
  });
});
