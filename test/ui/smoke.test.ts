// Proves the UI pipeline end to end: code-server with the packaged .vsix
// installed, Debian Chromium driven by playwright-core, the command palette,
// a webview, screenshots, and two people at once.
import * as assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import type { Browser } from 'playwright-core';
import {
  closeChromium,
  dialogText,
  frameText,
  launchChromium,
  paletteEntries,
  runCommand,
  saveScreenshot,
  startPerson,
  waitForWebviewContent,
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

  it('opens the chat panel as a webview and saves a screenshot', async () => {
    const page = alice!.page;
    await runCommand(page, 'Chat Room: Open Chat Panel');
    const error = await dialogText(page, 1_500);
    assert.equal(error, undefined, `the command reported: ${error}`);
    const frame = await waitForWebviewContent(page);
    const shown = await frameText(frame);
    assert.ok(shown.length > 0, 'the chat panel shows no text');
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
