// Code between the editor and the chat, as a person does it in a real VS Code
// (code-server) with the packaged extension, in real Chromium: a teammate's
// code block arrives highlighted, "Insert" puts it at the cursor of the file
// being edited; Send Selection puts a snippet in the message box for a
// comment; and the box completes a member's name.
import * as assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import type { MessageEvent as RoomMessage } from '../../shared/protocol';
import { ServerProcess } from '../support/serverProcess';
import { TestClient } from '../support/testClient';
import { closeChromium, launchChromium, runCommand, saveScreenshot, startPerson, type Person } from './harness';
import { chatFrame, delay, draftInPanel, eventually, hideTheChatView, joinThroughPrompts, panelText, showTheChatView } from './panelSteps';

const FILE = 'notes.ts';

/** Opens a workspace file through Quick Open, as a person does. */
async function openFile(page: Page, name: string): Promise<void> {
  await page.keyboard.press('Escape');
  await page.keyboard.press('Control+P');
  const input = page.locator('.quick-input-widget input.input');
  await input.waitFor({ state: 'visible', timeout: 10_000 });
  await input.fill(name);
  await page.locator('.quick-input-widget .monaco-list-row', { hasText: name }).first().waitFor({ state: 'visible', timeout: 10_000 });
  await input.press('Enter');
  await page.locator(`.tabs-container .tab.active:has-text("${name}")`).waitFor({ timeout: 10_000 });
}

/** Puts the keyboard in the open file's editor, at its first line. */
async function focusEditorAtTop(page: Page): Promise<void> {
  await page.locator('.editor-group-container .monaco-editor .view-lines').first().click();
  await page.keyboard.press('Control+Home');
}

describe('Chat Room: code between the editor and the chat', function () {
  this.timeout(300_000);
  let browser: Browser;
  let dana: Person;
  let server: ServerProcess;
  let teammate: TestClient;

  before(async () => {
    server = await ServerProcess.start();
    browser = await launchChromium();
    dana = await startPerson(browser, 'dana', { settings: { 'workbench.colorTheme': 'Default Dark Modern' } });
    writeFileSync(join(dana.host.workspaceDir, FILE), 'first line\nsecond line\n');
    teammate = await TestClient.join(server.port, 'teammate', { room: 'code' });
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') await saveScreenshot(dana.page, `failed-code-${this.currentTest.title}`).catch(() => undefined);
  });

  after(async () => {
    teammate?.close();
    await dana?.stop();
    if (browser) await closeChromium(browser);
    await server?.dispose();
  });

  it('dana opens a file and joins; a teammate\'s code block arrives highlighted', async () => {
    await openFile(dana.page, FILE);
    await joinThroughPrompts(dana.page, `127.0.0.1:${server.port}`, 'dana', 'code');
    await eventually('dana connected', async () => /Connected to .* as dana/.test(await panelText(dana.page)));
    teammate.send({ type: 'say', id: 'c1', text: '@dana try this:' });
    teammate.send({ type: 'say', id: 'c2', text: '```typescript\nconst answer: number = 42; // checked\n```' });
    const frame = await chatFrame(dana.page);
    await eventually('the code block', async () => (await frame.locator('.code-block .hljs-keyword').count()) > 0);
    assert.equal(await frame.locator('li.message.continued').count(), 1, 'the second message continues the first');
    assert.equal(await frame.locator('li.message.mentions-me').count(), 1);
    await saveScreenshot(dana.page, 'code-highlighted-dark');
  });

  it('"Insert" puts the code at the cursor of the file she was editing', async () => {
    await focusEditorAtTop(dana.page);
    const frame = await chatFrame(dana.page);
    const block = frame.locator('.code-block').first();
    await block.hover();
    await block.locator('button.insert-code').click();
    // The editor takes the focus back, so saving is a keystroke away.
    // The editor draws spaces as no-break spaces.
    await eventually('the editor to have the code', async () => (await dana.page.locator('.editor-group-container .monaco-editor .view-lines').first().innerText()).replace(/\u00a0/g, ' ').includes('const answer'));
    await dana.page.keyboard.press('Control+S');
    await eventually('the file saved with the code', async () => readFileSync(join(dana.host.workspaceDir, FILE), 'utf8') === 'const answer: number = 42; // checked\nfirst line\nsecond line\n');
  });

  it('Send Selection puts the snippet in the message box, and she adds a comment before it goes', async () => {
    await openFile(dana.page, FILE);
    await focusEditorAtTop(dana.page);
    await dana.page.keyboard.press('Shift+End');
    await runCommand(dana.page, 'Chat Room: Send Selection to Chat');
    const snippet = `${FILE}:1\n\`\`\`typescript\nconst answer: number = 42; // checked\n\`\`\``;
    await eventually('the snippet in the box', async () => (await draftInPanel(dana.page)) === `${snippet}\n`);
    const input = (await chatFrame(dana.page)).locator('#input');
    await eventually('the focus in the box', async () => (await input.evaluate((element) => element === element.ownerDocument.activeElement)) === true);
    await dana.page.keyboard.type('works for me @te');
    const frame = await chatFrame(dana.page);
    await eventually('the member completion', async () => (await frame.locator('#completions [role="option"]').allInnerTexts()).some((text) => text.startsWith('teammate')));
    await saveScreenshot(dana.page, 'send-selection-completion-dark');
    await dana.page.keyboard.press('Enter');
    await dana.page.keyboard.type('- thanks');
    await dana.page.keyboard.press('Enter');
    const heard = await teammate.nextFrame<RoomMessage>((frame) => frame.type === 'message' && frame.from === 'dana');
    assert.equal(heard.text, `${snippet}\nworks for me @teammate - thanks`);
    await delay(500);
    assert.equal(await draftInPanel(dana.page), '');
  });

  it('she looks away; back in the chat, a divider marks what came meanwhile', async () => {
    await hideTheChatView(dana.page);
    teammate.send({ type: 'say', id: 'c3', text: 'written while dana was away' });
    teammate.send({ type: 'say', id: 'c4', text: 'and another' });
    await delay(1_000);
    await showTheChatView(dana.page);
    const frame = await chatFrame(dana.page);
    await eventually('the messages', async () => (await frame.locator('li.message').count()) >= 5);
    const order = await frame.locator('#messages > li').evaluateAll((items) => items.map((item) => (item.id === 'unread-divider' ? 'divider' : (item.querySelector('.body')?.getAttribute('data-text') ?? ''))));
    assert.deepEqual(order.slice(order.indexOf('divider')), ['divider', 'written while dana was away', 'and another']);
    await saveScreenshot(dana.page, 'unread-divider-dark');
    const badge = dana.page.locator('.part.panel .composite-bar .action-item', { hasText: /chat room/i }).locator('.badge');
    await eventually('no badge once she sees them', async () => (await badge.count()) === 0 || !(await badge.first().isVisible()) || (await badge.first().innerText()).trim() === '', 10_000);
  });
});
