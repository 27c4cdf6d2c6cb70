// What a person types, clicks and reads in the chat panel, in a real VS Code
// (code-server) in Chromium: a refused message stays in the box with its
// reason, the focus lands in the message box, a link opens once, mentions are
// mentions, Leave Room leaves nothing half-done, an invite link pasted into
// Join Room fills in the rest, and emoji names are welcome.
import * as assert from 'node:assert/strict';
import type { Browser, Frame, Page } from 'playwright-core';
import { freeLoopbackPort } from '../support/freeLoopbackPort';
import { ServerProcess } from '../support/serverProcess';
import { TestClient } from '../support/testClient';
import { closeChromium, launchChromium, notificationTexts, runCommand, saveScreenshot, startPerson, type Person } from './harness';
import { answerInputBox, chatFrame, chatTab, delay, draftInPanel, eventually, hidePanelBehindAnEditor, joinThroughPrompts, messageTexts, panelText, showPanelByTab } from './panelSteps';

/** A short description of the focused element inside the webview, and whether the webview has the page's focus. */
async function focusIn(frame: Frame): Promise<string> {
  return (await frame.evaluate(`(() => {
    const el = document.activeElement;
    const where = !el || el === document.body ? 'body' : el.id ? '#' + el.id : el.tagName.toLowerCase();
    return document.hasFocus() ? where : 'elsewhere (' + where + ')';
  })()`)) as string;
}

/** Types as a person does, into whatever has the focus, and says whether it landed in the message box. */
async function typingLandsInMessageBox(page: Page, text: string): Promise<boolean> {
  await page.keyboard.type(text);
  await delay(200);
  const draft = await draftInPanel(page);
  // Clear it again the way a person would, so the next step starts empty.
  if (draft.includes(text)) {
    for (let index = 0; index < text.length; index++) await page.keyboard.press('Backspace');
  }
  return draft.includes(text);
}

/** Brings the chat panel to the front if another editor covers it (a test before may have left it so). */
async function showPanel(page: Page): Promise<void> {
  if ((await chatTab(page).getAttribute('aria-selected')) !== 'true') await showPanelByTab(page);
}

async function composer(page: Page): Promise<{ notice: string; counter: string; counterShown: boolean; enabled: boolean }> {
  const frame = await chatFrame(page);
  return (await frame.evaluate(`(() => {
    const counter = document.getElementById('byte-count');
    return {
      notice: document.getElementById('composer-notice')?.textContent ?? '',
      counter: counter?.textContent ?? '',
      counterShown: !!counter && !counter.hidden,
      enabled: !document.getElementById('input').disabled,
    };
  })()`)) as { notice: string; counter: string; counterShown: boolean; enabled: boolean };
}

/** Dialogs that appear within `windowMs`, each answered with `answer`; their texts, in order. */
async function dialogsWithin(page: Page, windowMs: number, answer: string): Promise<string[]> {
  const seen: string[] = [];
  const deadline = Date.now() + windowMs;
  const dialog = page.locator('.monaco-dialog-box');
  while (Date.now() < deadline) {
    if (await dialog.first().isVisible().catch(() => false)) {
      seen.push((await dialog.first().innerText()).replace(/\s+/g, ' ').trim());
      await page.locator('.monaco-dialog-box .dialog-buttons-row a.monaco-button', { hasText: answer }).first().click();
      await dialog.first().waitFor({ state: 'hidden', timeout: 5_000 }).catch(() => undefined);
    }
    await delay(100);
  }
  return seen;
}

describe('Chat Room: what a person types, clicks and reads', function () {
  this.timeout(300_000);
  let browser: Browser;
  let wanda: Person;
  let server: ServerProcess;
  let chatty: TestClient;
  let said = 0;
  const rawClients: TestClient[] = [];

  function chattySays(text: string): void {
    said += 1;
    chatty.send({ type: 'say', id: `w${said}`, text });
  }

  before(async () => {
    server = await ServerProcess.start();
    browser = await launchChromium();
    // Hidden behind an editor and brought back: the editor tab's behaviours.
    wanda = await startPerson(browser, 'wanda', { settings: { 'workbench.colorTheme': 'Default Dark Modern', 'chatRoom.openIn': 'editor' } });
    chatty = await TestClient.join(server.port, 'chatty', { room: 'words' });
    rawClients.push(chatty);
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && wanda) await saveScreenshot(wanda.page, `failed-words-${this.currentTest.title}`).catch(() => undefined);
  });

  after(async () => {
    for (const client of rawClients) client.close();
    await wanda?.stop();
    if (browser) await closeChromium(browser);
    await server?.dispose();
  });

  it('puts the focus in the message box once joined', async () => {
    await joinThroughPrompts(wanda.page, `127.0.0.1:${server.port}`, 'wanda', 'words');
    await eventually('wanda connected', async () => /Connected to 127\.0\.0\.1:\d+ as wanda/.test(await panelText(wanda.page)));
    await eventually('the focus in the message box', async () => (await focusIn(await chatFrame(wanda.page))) === '#input', 5_000);
    assert.equal(await typingLandsInMessageBox(wanda.page, 'typed right after joining'), true);
  });

  it('keeps a message that is too long in the box, with the reason beside it, and counts bytes near the limit', async () => {
    const frame = await chatFrame(wanda.page);
    const input = frame.locator('#input');
    await input.click();
    const tooLong = `${'word '.repeat(999)}end`; // 4,998 bytes
    await input.fill(tooLong);
    await input.press('Enter');
    await delay(1_000);
    assert.equal(await draftInPanel(wanda.page), tooLong, 'the text is still in the box');
    const state = await composer(wanda.page);
    assert.match(state.notice, /4,998 bytes.*at most 4,096/, `the reason shows beside the box: "${state.notice}"`);
    assert.equal(state.counter, '4,998 / 4,096 bytes');
    await saveScreenshot(wanda.page, 'words-too-long-dark');

    await input.fill('a'.repeat(3_000));
    assert.equal((await composer(wanda.page)).counterShown, false, 'no counter far from the limit');
    await input.fill('é'.repeat(1_600)); // 3,200 bytes in 1,600 characters: the limit is in bytes
    await eventually('the byte counter', async () => (await composer(wanda.page)).counter === '3,200 / 4,096 bytes');

    await input.fill('short enough');
    assert.equal((await composer(wanda.page)).notice, '', 'the reason goes once the text changes');
    await input.press('Enter');
    await chatty.nextFrame((frame) => frame.type === 'message' && frame.from === 'wanda' && frame.text === 'short enough', 10_000);
    assert.equal(await draftInPanel(wanda.page), '', 'a message the host took leaves the box');
    assert.ok(!chatty.frames().some((frame) => frame.type === 'message' && frame.text === tooLong), 'the long one never went out');
  });

  it('opens a link once, through VS Code, when it is clicked', async () => {
    chattySays('the guide is at https://example.com/guide');
    await eventually('the link in the panel', async () => (await messageTexts(wanda.page)).some((text) => text.includes('example.com/guide')));
    const opened: Page[] = [];
    const onPage = (page: Page) => opened.push(page);
    wanda.context.on('page', onPage);
    try {
      const frame = await chatFrame(wanda.page);
      await frame.locator('#messages a[href="https://example.com/guide"]').click();
      // VS Code asks before it opens a link from a webview; the person says Open.
      const dialogs = await dialogsWithin(wanda.page, 4_000, 'Open');
      assert.equal(dialogs.length, 1, `one confirmation for one click: ${JSON.stringify(dialogs)}`);
      assert.match(dialogs[0], /example\.com\/guide/);
      await delay(1_000);
      assert.equal(opened.length, 1, `one tab for one click, not ${opened.length}`);
    } finally {
      wanda.context.off('page', onPage);
      for (const page of opened) await page.close().catch(() => undefined);
    }
  });

  it('does not take an email address for a mention, and a mention notification answered with "Open Chat" closes and lands in the message box', async () => {
    await hidePanelBehindAnEditor(wanda.page);
    await runCommand(wanda.page, 'Notifications: Clear All Notifications');
    const toastsWith = async (text: string) => (await notificationTexts(wanda.page)).filter((toast) => toast.includes(text));
    chattySays('write to x@wanda.com, an address');
    await delay(2_000);
    assert.deepEqual(await toastsWith('an address'), [], 'an email address is not a mention');
    chattySays('@wanda, can you look?');
    await eventually('a mention notification', async () => (await toastsWith('chatty mentioned you: @wanda, can you look?')).length === 1);

    const toast = wanda.page.locator('.notifications-toasts .notification-list-item', { hasText: 'can you look?' }).first();
    await toast.locator('a.monaco-button', { hasText: 'Open Chat' }).click();
    await eventually('the notification to close', async () => (await toastsWith('can you look?')).length === 0, 5_000);
    await eventually('the focus in the message box', async () => (await focusIn(await chatFrame(wanda.page))) === '#input', 5_000);
    assert.equal(await typingLandsInMessageBox(wanda.page, 'answering the mention'), true);
  });

  it('shows one notification for a flood of mentions, not one each: a hostile member cannot bury the window in them', async () => {
    await showPanel(wanda.page);
    await hidePanelBehindAnEditor(wanda.page);
    await runCommand(wanda.page, 'Notifications: Clear All Notifications');
    for (let index = 1; index <= 12; index++) chattySays(`@wanda flood ${index}`);
    await eventually('the flood counted as unread', async () => (await wanda.page.locator('.part.statusbar').innerText()).includes('12 unread'), 15_000);
    await delay(1_000);
    const toasts = (await notificationTexts(wanda.page)).filter((toast) => toast.includes('flood'));
    assert.equal(toasts.length, 1, `one notification for the flood: ${JSON.stringify(toasts)}`);
    await runCommand(wanda.page, 'Notifications: Clear All Notifications');
  });

  it('puts the focus in the message box after Open Chat Panel', async () => {
    await showPanel(wanda.page);
    await hidePanelBehindAnEditor(wanda.page);
    await runCommand(wanda.page, 'Chat Room: Open Chat Panel');
    await eventually('the focus in the message box', async () => (await focusIn(await chatFrame(wanda.page))) === '#input', 5_000);
    assert.equal(await typingLandsInMessageBox(wanda.page, 'typed after Open Chat Panel'), true);
  });

  it('after Leave Room says so, lists nobody, offers Join, and its message box takes no input', async () => {
    await showPanel(wanda.page);
    await runCommand(wanda.page, 'Chat Room: Leave Room');
    await chatty.nextFrame((frame) => frame.type === 'left' && frame.name === 'wanda', 5_000);
    await eventually('the panel to say wanda left', async () => /You left words/.test(await panelText(wanda.page)));
    const frame = await chatFrame(wanda.page);
    assert.match(await panelText(wanda.page), /members \(0\)/i);
    assert.equal(await frame.locator('#member-list li').count(), 0, 'no stale member list');
    assert.equal(await frame.locator('#connection button', { hasText: 'Join Room' }).count(), 1, 'Join is offered');
    assert.equal((await composer(wanda.page)).enabled, false, 'the message box is disabled');
    await frame.locator('#input').click({ force: true }).catch(() => undefined);
    await wanda.page.keyboard.type('typed after leaving');
    await wanda.page.keyboard.press('Enter');
    await delay(500);
    assert.ok(!(await draftInPanel(wanda.page)).includes('typed after leaving'), 'nothing can be typed for a room you left');
    assert.equal(await frame.locator('li.pending-only').count(), 0, 'nothing waits to be sent');
    await saveScreenshot(wanda.page, 'words-after-leave-dark');
  });

  it('fills in the rest of Join Room from an invite link pasted into the address box', async () => {
    const link = `vscode://chat-room.chat-room/join?host=127.0.0.1&port=${server.port}&room=invited-here`;
    await runCommand(wanda.page, 'Chat Room: Join Room');
    await answerInputBox(wanda.page, 'server address', link);
    await answerInputBox(wanda.page, 'your name', 'wanda');
    const widget = wanda.page.locator('.quick-input-widget');
    await eventually('the room prompt filled in from the link', async () => (await widget.innerText()).includes('room') && (await wanda.page.locator('.quick-input-widget input.input').inputValue()) === 'invited-here', 10_000);
    await wanda.page.locator('.quick-input-widget input.input').press('Enter');
    await eventually('wanda in the invited room', async () => /# invited-here/.test(await panelText(wanda.page)) && /Connected to 127\.0\.0\.1:\d+ as wanda/.test(await panelText(wanda.page)));
  });

  it('offers to start a server when Join Room finds nothing listening on this machine', async () => {
    const nothingThere = await freeLoopbackPort();
    await runCommand(wanda.page, 'Notifications: Clear All Notifications');
    await joinThroughPrompts(wanda.page, `127.0.0.1:${nothingThere}`, 'wanda', 'words');
    const toast = wanda.page.locator('.notifications-toasts .notification-list-item', { hasText: 'Nothing is listening' }).first();
    await toast.waitFor({ state: 'visible', timeout: 15_000 });
    await toast.locator('a.monaco-button', { hasText: 'Start Chat Server' }).click();
    const widget = wanda.page.locator('.quick-input-widget');
    await eventually('Start Chat Server asking who may connect', async () => (await widget.isVisible()) && (await widget.innerText()).includes('This machine only'), 10_000);
    await wanda.page.keyboard.press('Escape');
    assert.match(await panelText(wanda.page), /Connected to .* as wanda/, 'still in the room it was in');
  });

  it('names the character it refuses in a name, and welcomes a name with emoji joined by ZWJ', async () => {
    await runCommand(wanda.page, 'Chat Room: Join Room');
    await answerInputBox(wanda.page, 'server address', `127.0.0.1:${server.port}`);
    const input = wanda.page.locator('.quick-input-widget input.input');
    const widget = wanda.page.locator('.quick-input-widget');
    await eventually('the name prompt', async () => (await widget.innerText()).includes('your name'), 10_000);
    await input.fill('wan\u200Bda');
    await eventually('the refused character named', async () => /U\+200B/i.test(await widget.innerText()), 5_000);
    await input.fill('👩‍💻 wanda');
    await delay(300);
    assert.doesNotMatch(await widget.innerText(), /control|invisible|not allowed/i, 'the emoji name is accepted');
    await input.press('Enter');
    await answerInputBox(wanda.page, 'room', 'words');
    await eventually('joined under the emoji name', async () => (await panelText(wanda.page)).includes('as 👩‍💻 wanda'), 15_000);
    await chatty.nextFrame((frame) => frame.type === 'joined' && frame.name === '👩‍💻 wanda', 5_000);
  });
});
