// Completion in the message box, typed with a real keyboard in real Chromium
// running the packaged webview script (test/ui/panelPage.ts): `@` members,
// `#` rooms and `/` commands, moved through with the arrows, picked with
// Enter, Tab or a click, and closed with Escape, without sending anything.
import * as assert from 'node:assert/strict';
import type { Browser } from 'playwright-core';
import { closeChromium, launchChromium, saveScreenshot } from './harness';
import { IN_LOBBY, PanelPage } from './panelPage';

describe('Message box completion, in a real browser', function () {
  this.timeout(60_000);
  let browser: Browser | undefined;
  let panel: PanelPage;

  before(async () => {
    browser = await launchChromium();
  });

  beforeEach(async () => {
    panel = await PanelPage.open(browser!);
    await panel.snapshot([], { ...IN_LOBBY, members: ['alice', 'Albert', 'bob', 'carol'], memberCount: 4 });
    await panel.page.locator('#input').click();
  });

  afterEach(async () => {
    await panel.close();
  });

  after(async () => {
    if (browser) await closeChromium(browser);
  });

  const options = () => panel.page.locator('#completions [role="option"]');
  const draft = () => panel.page.locator('#input').inputValue();
  const sends = async () => (await panel.posted()).filter((message) => message.type === 'send');

  it('completes a member after @, moving with the arrows and picking with Enter, which does not send', async () => {
    await panel.page.keyboard.type('thanks @al');
    assert.deepEqual(await options().allInnerTexts(), ['alice\tmember', 'Albert\tmember'].map((text) => text.replace('\t', '\n')));
    const input = panel.page.locator('#input');
    assert.equal(await input.getAttribute('aria-expanded'), 'true');
    assert.equal(await input.getAttribute('aria-activedescendant'), await options().nth(0).getAttribute('id'));
    await panel.page.keyboard.press('ArrowDown');
    assert.equal(await options().nth(1).getAttribute('aria-selected'), 'true');
    assert.equal(await input.getAttribute('aria-activedescendant'), await options().nth(1).getAttribute('id'));
    await saveScreenshot(panel.page, 'completion-members');
    await panel.page.keyboard.press('Enter');
    assert.equal(await draft(), 'thanks @Albert ');
    assert.equal(await options().count(), 0, 'the list closes once picked');
    assert.deepEqual(await sends(), [], 'Enter picked, it did not send');
    await panel.page.keyboard.type('for the fix');
    await panel.page.keyboard.press('Enter');
    await panel.page.waitForTimeout(50);
    assert.deepEqual((await sends()).map((message) => message.type === 'send' && message.text), ['thanks @Albert for the fix'], 'with the list closed, Enter sends');
  });

  it('offers the slash commands at the start of the message, and Tab inserts one', async () => {
    await panel.page.keyboard.type('/');
    const labels = await options().locator('.completion-label').allInnerTexts();
    assert.deepEqual(labels, ['/join #room', '/leave', '/dm name', '/me action', '/topic text', '/search text', '/kick name']);
    await panel.page.keyboard.type('d');
    assert.deepEqual(await options().locator('.completion-label').allInnerTexts(), ['/dm name']);
    await panel.page.keyboard.press('Tab');
    assert.equal(await draft(), '/dm ');
    assert.equal(await panel.page.evaluate('document.activeElement.id'), 'input', 'Tab stayed in the box');
    await panel.page.keyboard.type('@c');
    await options().first().click();
    assert.equal(await draft(), '/dm @carol ');
  });

  it('runs a command typed in full that takes nothing (/leave) on the first Enter', async () => {
    await panel.page.keyboard.type('/leave');
    assert.deepEqual(await options().locator('.completion-label').allInnerTexts(), ['/leave'], 'the list shows it');
    await panel.page.keyboard.press('Enter');
    await panel.page.waitForTimeout(50);
    assert.deepEqual((await panel.posted()).filter((message) => message.type === 'leaveConversation'), [{ type: 'leaveConversation', key: '' }], 'Enter ran it');
    assert.equal(await draft(), '');
  });

  it('completes a room after #, and Escape closes the list until the word changes', async () => {
    await panel.page.keyboard.type('see #lo');
    assert.deepEqual(await options().locator('.completion-label').allInnerTexts(), ['#lobby']);
    await panel.page.keyboard.press('Escape');
    assert.equal(await options().count(), 0);
    await panel.page.keyboard.press('Enter');
    await panel.page.waitForTimeout(50);
    const [sent] = await sends();
    assert.deepEqual(sent?.type === 'send' && sent.text, 'see #lo', 'with the list closed, Enter sends what is there');
    // The host takes it, so it leaves the box.
    await panel.post({ type: 'sendResult', inReplyTo: sent.type === 'send' ? sent.requestId : -1, accepted: true });
    assert.equal(await draft(), '');
    await panel.page.keyboard.type('#l');
    assert.deepEqual(await options().locator('.completion-label').allInnerTexts(), ['#lobby'], 'a new word, the list again');
  });
});
