// One person in a high-contrast VS Code, a raw client talking to them: the
// panel's accessible names and live region, the keyboard path through it, the
// "new messages" marker, unread counts and notifications for each
// chatRoom.notifications value, and the theme's --vscode-* colours.
import * as assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Frame, Page } from 'playwright-core';
import { ServerProcess } from '../support/serverProcess';
import { TestClient } from '../support/testClient';
import { closeChromium, launchChromium, notificationTexts, runCommand, saveScreenshot, startPerson, type Person } from './harness';
import { chatFrame, chatTab, delay, eventually, hidePanelBehindAnEditor, joinThroughPrompts, messageTexts, panelText, showPanelByTab } from './panelSteps';

/**
 * Changes user settings as a person does in settings.json: opens it with
 * "Preferences: Open User Settings (JSON)", replaces the text, saves and closes
 * it. (Rewriting the file behind the workbench's back was not picked up within
 * seconds in code-server.)
 */
async function updateUserSettings(person: Person, changes: Record<string, unknown>): Promise<void> {
  const file = join(person.host.userDataDir, 'User', 'settings.json');
  const settings = { ...(JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>), ...changes };
  const page = person.page;
  await runCommand(page, 'Preferences: Open User Settings (JSON)');
  const editor = page.locator('.editor-instance .monaco-editor textarea').first();
  await eventually('settings.json in an editor', async () => (await page.locator('.tabs-container .tab.active', { hasText: 'settings.json' }).count()) === 1, 10_000);
  await editor.focus();
  await page.keyboard.press('Control+A');
  await page.keyboard.press('Delete');
  await page.keyboard.insertText(JSON.stringify(settings, null, 2));
  await runCommand(page, 'File: Save');
  await eventually('settings.json saved with the change', async () => {
    const saved = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    return Object.entries(changes).every(([key, value]) => saved[key] === value);
  }, 10_000);
  await runCommand(page, 'View: Close Editor');
  await delay(500); // the configuration change reaches the extension host a moment later
}

async function statusBarText(page: Page): Promise<string> {
  return page.locator('.part.statusbar').innerText();
}

async function scrollMetrics(frame: Frame): Promise<{ top: number; atBottom: boolean; markerVisible: boolean }> {
  // A string, because this file is type-checked without the DOM library.
  return (await frame.evaluate(`(() => {
    const list = document.getElementById('messages');
    const marker = document.getElementById('new-messages');
    return {
      top: list.scrollTop,
      atBottom: list.scrollHeight - list.scrollTop - list.clientHeight < 2,
      markerVisible: !marker.hidden && marker.getBoundingClientRect().height > 0,
    };
  })()`)) as { top: number; atBottom: boolean; markerVisible: boolean };
}

/** A short description of the focused element inside the webview. */
async function focusedControl(frame: Frame): Promise<string> {
  return (await frame.evaluate(`(() => {
    const el = document.activeElement;
    if (!el || el === document.body) return 'body';
    if (el.id) return '#' + el.id;
    return el.tagName.toLowerCase() + (el.className ? '.' + String(el.className).split(' ')[0] : '');
  })()`)) as string;
}

describe('Chat Room: panel behaviour in a high-contrast theme', function () {
  this.timeout(300_000);
  let browser: Browser;
  let hana: Person;
  let server: ServerProcess;
  let chatty: TestClient;
  let said = 0;

  /** Sends from the raw client and waits until hana's panel or session has it. */
  function chattySays(text: string): void {
    said += 1;
    chatty.send({ type: 'say', id: `c${said}`, text });
  }

  before(async () => {
    server = await ServerProcess.start();
    browser = await launchChromium();
    hana = await startPerson(browser, 'hana', {
      settings: {
        'workbench.colorTheme': 'Default High Contrast',
        // These behaviours are the editor tab's (hidden behind another editor, and so on).
        'chatRoom.openIn': 'editor',
        // settings.json is edited by inserting text; the editor must not add brackets or quotes of its own.
        'editor.autoClosingBrackets': 'never',
        'editor.autoClosingQuotes': 'never',
        'editor.autoIndent': 'none',
      },
    });
    chatty = await TestClient.join(server.port, 'chatty', { room: 'behaviour' });
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && hana) await saveScreenshot(hana.page, `failed-behaviour-${this.currentTest.title}`).catch(() => undefined);
  });

  after(async () => {
    chatty?.close();
    await hana?.stop();
    if (browser) await closeChromium(browser);
    await server?.dispose();
  });

  it('joins the room', async () => {
    await joinThroughPrompts(hana.page, `127.0.0.1:${server.port}`, 'hana', 'behaviour');
    await eventually('hana connected', async () => /Connected to 127\.0\.0\.1:\d+ as hana/.test(await panelText(hana.page)));
    chattySays('welcome! docs at https://example.com/guide and the bug is in src/app.ts:12');
    await eventually('the first message', async () => (await messageTexts(hana.page)).length === 1);
  });

  it('gives every control an accessible name and announces messages in a live region', async () => {
    const frame = await chatFrame(hana.page);
    const found = (await frame.evaluate(`(() => {
      const nameOf = (el) => {
        const labelledBy = (el.getAttribute('aria-labelledby') || '').split(/\\s+/).filter(Boolean)
          .map((id) => document.getElementById(id)?.textContent || '').join(' ').trim();
        const label = el.id ? [...document.querySelectorAll('label')].find((l) => l.htmlFor === el.id)?.textContent?.trim() : '';
        return (el.getAttribute('aria-label') || labelledBy || label || el.textContent || el.getAttribute('title') || '').trim();
      };
      const controls = [...document.querySelectorAll('button, input, textarea, select, a[href], [tabindex]')];
      const list = document.getElementById('messages');
      return {
        controls: controls.map((el) => ({ what: el.tagName.toLowerCase() + (el.id ? '#' + el.id : ''), name: nameOf(el) })),
        log: { role: list.getAttribute('role'), live: list.getAttribute('aria-live'), name: nameOf(list) },
        messagesInLog: list.querySelectorAll('li.message').length,
        connectionLive: document.getElementById('connection').getAttribute('aria-live'),
      };
    })()`)) as { controls: { what: string; name: string }[]; log: { role: string; live: string; name: string }; messagesInLog: number; connectionLive: string };
    assert.ok(found.controls.length >= 5, `controls found: ${JSON.stringify(found.controls)}`);
    const unnamed = found.controls.filter((control) => !control.name);
    assert.deepEqual(unnamed, [], 'every button, input, textarea, link and focusable element has a name');
    assert.ok(found.controls.some((control) => control.what === 'textarea#input' && control.name === 'Message'));
    assert.ok(found.controls.some((control) => control.what === 'button#send' && control.name === 'Send message'));
    assert.deepEqual(found.log, { role: 'log', live: 'polite', name: 'Messages' });
    assert.equal(found.messagesInLog, 1, 'messages are added inside the live region');
    assert.equal(found.connectionLive, 'polite', 'connection changes are announced too');
  });

  it('works from the keyboard: Tab reaches the list, links, members, input and button; Enter sends, Shift+Enter adds a line', async () => {
    const frame = await chatFrame(hana.page);
    await frame.locator('#room-title').click();
    const visited: string[] = [];
    // The conversation list and each message's actions are stops too.
    for (let step = 0; step < 30; step++) {
      await hana.page.keyboard.press('Tab');
      const focused = await focusedControl(frame);
      visited.push(focused);
      if (focused === '#send') break;
    }
    for (const stop of ['#messages', 'a.path-link', '#member-list', '#input', '#send']) assert.ok(visited.includes(stop), `Tab reaches ${stop}: ${visited.join(' → ')}`);
    assert.ok(visited.some((stop) => stop === 'a' || stop.startsWith('a.')) && visited.indexOf('#input') < visited.indexOf('#send'), `order: ${visited.join(' → ')}`);

    await hana.page.keyboard.press('Shift+Tab');
    assert.equal(await focusedControl(frame), '#input');
    await hana.page.keyboard.type('first line');
    await hana.page.keyboard.press('Shift+Enter');
    await hana.page.keyboard.type('second line');
    assert.equal(await frame.locator('#input').inputValue(), 'first line\nsecond line', 'Shift+Enter adds a line and sends nothing');
    await hana.page.keyboard.press('Enter');
    const heard = await chatty.nextFrame((received) => received.type === 'message' && received.from === 'hana', 10_000);
    assert.equal(heard.type === 'message' && heard.text, 'first line\nsecond line');
    // The box empties once the extension has taken the message (its answer can trail the message itself by a moment).
    await eventually('the message box emptied', async () => (await frame.locator('#input').inputValue()) === '', 5_000);

    await hana.page.keyboard.type('sent with the button');
    await hana.page.keyboard.press('Tab');
    assert.equal(await focusedControl(frame), '#send');
    await hana.page.keyboard.press('Enter');
    const second = await chatty.nextFrame((received) => received.type === 'message' && received.from === 'hana', 10_000);
    assert.equal(second.type === 'message' && second.text, 'sent with the button');
  });

  it('keeps the reader where they scrolled and shows a "new messages" marker; clicking it, or End, goes down', async () => {
    for (let index = 1; index <= 40; index++) chattySays(`filler message ${index}`);
    await eventually('the filler messages', async () => (await messageTexts(hana.page)).includes('filler message 40'));
    const frame = await chatFrame(hana.page);
    assert.equal((await scrollMetrics(frame)).atBottom, true, 'new messages scroll the list while at the bottom');

    await frame.locator('#messages').hover();
    await hana.page.mouse.wheel(0, -4000);
    await eventually('the list scrolled to the top', async () => (await scrollMetrics(frame)).top === 0, 5_000);
    chattySays('news while hana reads old messages');
    await eventually('the news to arrive', async () => (await messageTexts(hana.page)).includes('news while hana reads old messages'));
    const metrics = await scrollMetrics(frame);
    assert.equal(metrics.top, 0, 'auto-scroll did not jump');
    assert.equal(metrics.markerVisible, true, 'the marker shows');
    await saveScreenshot(hana.page, 'panel-new-messages-marker-high-contrast');

    await frame.locator('#new-messages').click();
    // The marker goes on the scroll event that reaches the bottom, which can come a frame after the list got there.
    await eventually('the click to reach the bottom and hide the marker', async () => {
      const now = await scrollMetrics(frame);
      return now.atBottom && !now.markerVisible;
    }, 5_000);

    await frame.locator('#messages').hover();
    await hana.page.mouse.wheel(0, -4000);
    await eventually('the list scrolled up again', async () => (await scrollMetrics(frame)).top === 0, 5_000);
    chattySays('more news');
    await eventually('the marker again', async () => (await scrollMetrics(frame)).markerVisible);
    await frame.locator('#messages').focus();
    await hana.page.keyboard.press('End');
    await eventually('End to reach the bottom and hide the marker', async () => {
      const now = await scrollMetrics(frame);
      return now.atBottom && !now.markerVisible;
    }, 5_000);
  });

  it('takes its colours from the theme: --vscode-* variables, the editor background, a high-contrast screenshot', async () => {
    const frame = await chatFrame(hana.page);
    const panel = (await frame.evaluate(`(() => {
      const root = getComputedStyle(document.documentElement);
      const probe = document.createElement('div');
      probe.style.color = root.getPropertyValue('--vscode-editor-background');
      document.body.append(probe);
      const editorBackground = getComputedStyle(probe).color;
      probe.remove();
      return {
        editorBackgroundVar: root.getPropertyValue('--vscode-editor-background').trim(),
        contrastBorderVar: root.getPropertyValue('--vscode-contrastBorder').trim(),
        editorBackground,
        bodyBackground: getComputedStyle(document.body).backgroundColor,
        bodyColor: getComputedStyle(document.body).color,
        themeKind: document.body.getAttribute('data-vscode-theme-kind'),
      };
    })()`)) as Record<string, string>;
    const workbenchEditorBackground = await hana.page.evaluate(`getComputedStyle(document.querySelector('.monaco-workbench')).getPropertyValue('--vscode-editor-background').trim()`);
    assert.ok(panel.editorBackgroundVar, '--vscode-editor-background resolves in the webview');
    assert.equal(panel.editorBackgroundVar.toLowerCase(), String(workbenchEditorBackground).toLowerCase(), 'the same editor background as the workbench');
    assert.equal(panel.bodyBackground, panel.editorBackground, 'the panel background is the editor background');
    assert.equal(panel.bodyBackground, 'rgb(0, 0, 0)', 'high contrast dark is black');
    assert.ok(panel.contrastBorderVar, 'high contrast defines a contrast border');
    assert.equal(panel.themeKind, 'vscode-high-contrast');
    await saveScreenshot(hana.page, 'panel-high-contrast');
  });

  it('counts unread while hidden and notifies per chatRoom.notifications (mentions, off, all)', async () => {
    await hidePanelBehindAnEditor(hana.page);
    await runCommand(hana.page, 'Notifications: Clear All Notifications');
    const toastsWith = async (text: string) => (await notificationTexts(hana.page)).filter((toast) => toast.includes(text));

    // mentions (the default): no mention, no notification; the unread count still shows.
    chattySays('nothing for anyone in particular');
    await eventually('1 unread in the status bar', async () => (await statusBarText(hana.page)).includes('behaviour · 1 unread'));
    assert.match((await chatTab(hana.page).innerText()).trim(), /\(1\)/, 'the panel title counts it');
    await delay(1_500);
    assert.deepEqual(await toastsWith('nothing for anyone'), [], 'no notification without a mention');
    chattySays('hey @hana, a question');
    await eventually('a mention notification', async () => (await toastsWith('chatty mentioned you: hey @hana, a question')).length === 1);
    assert.ok((await statusBarText(hana.page)).includes('behaviour · 2 unread'));

    await updateUserSettings(hana, { 'chatRoom.notifications': 'off' });
    await runCommand(hana.page, 'Notifications: Clear All Notifications');
    chattySays('@hana but notifications are off');
    await eventually('3 unread', async () => (await statusBarText(hana.page)).includes('behaviour · 3 unread'));
    await delay(1_500);
    assert.deepEqual(await toastsWith('notifications are off'), [], 'off: not even a mention notifies');

    await updateUserSettings(hana, { 'chatRoom.notifications': 'all' });
    chattySays('an ordinary remark');
    await eventually('a notification for an ordinary message', async () => (await toastsWith('chatty: an ordinary remark')).length === 1);
    await saveScreenshot(hana.page, 'panel-hidden-notification-high-contrast');

    await showPanelByTab(hana.page);
    await eventually('the unread count to clear', async () => !(await statusBarText(hana.page)).includes('unread') && !/\(\d+\)/.test(await chatTab(hana.page).innerText()));
  });

});
