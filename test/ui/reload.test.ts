// A real reload of the code-server workbench page: the chat panel
// comes back through the WebviewPanelSerializer and rejoins its room; a
// message written while the server was unreachable waits in the outbox,
// survives the reload and is delivered exactly once; the draft in the message
// box survives hiding the panel and reloading the window.
import * as assert from 'node:assert/strict';
import type { Browser } from 'playwright-core';
import { ServerProcess } from '../support/serverProcess';
import { TestClient } from '../support/testClient';
import { closeChromium, launchChromium, runCommand, saveScreenshot, startPerson, type Person } from './harness';
import {
  chatTab,
  delay,
  draftInPanel,
  eventually,
  hidePanelBehindAnEditor,
  joinThroughPrompts,
  messageTexts,
  panelText,
  reloadWorkbench,
  sendInPanel,
  sendStateOf,
  showPanelByTab,
  typeDraft,
} from './panelSteps';

const countOf = (items: string[], item: string) => items.filter((candidate) => candidate === item).length;

/** How long after the last keystroke a reload may come; the workbench stores webview state asynchronously. */
const DRAFT_SETTLE_MS = Number(process.env.CHAT_ROOM_DRAFT_SETTLE_MS ?? 1_500);

describe('Chat Room: the panel across hiding and a window reload', function () {
  this.timeout(300_000);
  let browser: Browser;
  let rita: Person;
  let server: ServerProcess;
  let restarted: ServerProcess | undefined;
  let watcher: TestClient;
  /** On the restarted server, from the outbox test on. */
  let verifier: TestClient;
  const rawClients: TestClient[] = [];

  before(async () => {
    server = await ServerProcess.start();
    browser = await launchChromium();
    // A restored editor tab is what these reloads are about.
    rita = await startPerson(browser, 'rita', { settings: { 'workbench.colorTheme': 'Default Dark Modern', 'chatRoom.openIn': 'editor' } });
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed' && rita) await saveScreenshot(rita.page, `failed-reload-${this.currentTest.title}`).catch(() => undefined);
  });

  after(async () => {
    for (const client of rawClients) client.close();
    await rita?.stop();
    if (browser) await closeChromium(browser);
    await restarted?.dispose();
    await server?.dispose();
  });

  it('joins and talks with a raw client', async () => {
    watcher = await TestClient.join(server.port, 'watcher', { room: 'reload' });
    rawClients.push(watcher);
    await joinThroughPrompts(rita.page, `127.0.0.1:${server.port}`, 'rita', 'reload');
    await eventually('rita connected', async () => /Connected to 127\.0\.0\.1:\d+ as rita/.test(await panelText(rita.page)));
    await sendInPanel(rita.page, 'said before anything broke');
    watcher.send({ type: 'say', id: 'w1', text: 'watcher was here first' });
    await eventually('both messages shown', async () => {
      const texts = await messageTexts(rita.page);
      return texts.includes('said before anything broke') && texts.includes('watcher was here first');
    });
  });

  it('keeps the draft when the panel is hidden behind another editor and shown again', async () => {
    await typeDraft(rita.page, 'a draft that must survive hiding');
    await hidePanelBehindAnEditor(rita.page);
    await showPanelByTab(rita.page);
    // The hidden webview was torn down (no retained context), so this is a new document restoring its state.
    await eventually('the draft back in the message box', async () => (await draftInPanel(rita.page)) === 'a draft that must survive hiding');
    const texts = await messageTexts(rita.page);
    assert.equal(countOf(texts, 'said before anything broke'), 1, `history redrawn once: ${JSON.stringify(texts)}`);
  });

  it('after a window reload while connected, the serializer restores the panel, rejoins, and shows the history once', async () => {
    await typeDraft(rita.page, 'a draft that must survive a reload');
    await delay(DRAFT_SETTLE_MS);
    await reloadWorkbench(rita);
    await eventually('rita connected again after the reload', async () => /Connected to 127\.0\.0\.1:\d+ as rita/.test(await panelText(rita.page)), 30_000);
    await eventually('history in the restored panel', async () => (await messageTexts(rita.page)).includes('watcher was here first'), 15_000);
    await delay(1_000);
    const texts = await messageTexts(rita.page);
    for (const text of ['said before anything broke', 'watcher was here first']) assert.equal(countOf(texts, text), 1, `"${text}" shown once in ${JSON.stringify(texts)}`);
    assert.equal(await draftInPanel(rita.page), 'a draft that must survive a reload');
    assert.match(await panelText(rita.page), /members \(2\)/i, 'rita and the watcher');
    // A reload is a departure rita chose: the room hears her leave, not lose her connection.
    const departures = watcher.frames().flatMap((frame) => (frame.type === 'left' && frame.name === 'rita' ? [frame.reason] : []));
    assert.deepEqual(departures, ['quit'], 'the reloading window said bye');
  });

  it('shows a message written while the server is down as pending', async () => {
    await server.stop('SIGKILL');
    await eventually('the panel to say it is reconnecting', async () => /Reconnecting in \d+ s/.test(await panelText(rita.page)));
    await sendInPanel(rita.page, 'written while the server was down');
    await eventually('the offline message shown as pending', async () => {
      const states = await sendStateOf(rita.page, 'written while the server was down');
      return states.length === 1 && states[0] === 'sending…';
    });
    await typeDraft(rita.page, 'a draft written offline');
    await saveScreenshot(rita.page, 'reload-before-pending');
  });

  it('after a window reload with the server down, the restored panel still shows the message pending, and the draft', async () => {
    await delay(DRAFT_SETTLE_MS);
    await reloadWorkbench(rita);
    await eventually('the offline message still pending', async () => {
      const states = await sendStateOf(rita.page, 'written while the server was down');
      return states.length === 1 && states[0] === 'sending…';
    }, 30_000);
    assert.equal(await draftInPanel(rita.page), 'a draft written offline');
    assert.match(await panelText(rita.page), /Reconnecting|Connecting/, 'the restored panel is trying to rejoin');
  });

  it('delivers the outbox exactly once when the server is back, shows it sent, and duplicates nothing', async () => {
    restarted = await ServerProcess.start({ dataDir: server.dataDir, args: ['--port', String(server.port)] });
    // The client may be mid-backoff (at most 30 s); waiting must be enough, no "Reconnect Now" click.
    await eventually('rita connected again', async () => /Connected to 127\.0\.0\.1:\d+ as rita/.test(await panelText(rita.page)), 45_000);
    await eventually('the offline message shown as sent', async () => {
      const states = await sendStateOf(rita.page, 'written while the server was down');
      return states.length === 1 && states[0] === 'sent';
    }, 20_000);
    await eventually('history back in the panel', async () => (await messageTexts(rita.page)).includes('watcher was here first'), 10_000);
    // Give a late duplicate (a second resend, or the previous extension host) time to show up.
    await delay(2_000);
    const texts = await messageTexts(rita.page);
    for (const text of ['said before anything broke', 'watcher was here first', 'written while the server was down']) {
      assert.equal(countOf(texts, text), 1, `"${text}" shown once in ${JSON.stringify(texts)}`);
    }
    verifier = await TestClient.join(restarted.port, 'verifier', { room: 'reload' });
    rawClients.push(verifier);
    await delay(500);
    const stored = verifier.frames().flatMap((frame) => (frame.type === 'message' ? [frame.text] : []));
    assert.equal(countOf(stored, 'written while the server was down'), 1, `stored once: ${JSON.stringify(stored)}`);
    assert.equal(countOf(stored, 'said before anything broke'), 1);
    assert.equal(await draftInPanel(rita.page), 'a draft written offline', 'the draft is still there, unsent');
    await saveScreenshot(rita.page, 'reload-after-delivery');
  });

  it('is still in the room after a reload with the chat panel closed: the room is not the panel', async () => {
    const seenBefore = verifier.frames().length;
    await chatTab(rita.page).locator('.codicon-close, .tab-actions a').first().click();
    await eventually('the chat tab closed', async () => (await chatTab(rita.page).count()) === 0, 10_000);
    await delay(DRAFT_SETTLE_MS);
    const reloaded = rita.page.waitForEvent('framenavigated', { predicate: (frame) => frame === rita.page.mainFrame(), timeout: 60_000 });
    await runCommand(rita.page, 'Developer: Reload Window');
    await reloaded;
    await rita.page.waitForSelector('.part.statusbar', { timeout: 60_000 });
    await eventually('rita back in the room, without a panel', async () => (await rita.page.locator('.part.statusbar').innerText()).includes('reload'), 30_000);
    await eventually('the room to see rita come back', async () => verifier.frames().slice(seenBefore).some((frame) => frame.type === 'joined' && frame.name === 'rita'), 15_000);
    const departures = verifier.frames().slice(seenBefore).flatMap((frame) => (frame.type === 'left' && frame.name === 'rita' ? [frame.reason] : []));
    assert.deepEqual(departures, ['quit'], 'she left on purpose as the window reloaded, and came back');
    assert.equal(await chatTab(rita.page).count(), 0, 'the panel she closed stays closed');
    await delay(2_000); // the reloaded workbench takes commands a moment after it paints
    await runCommand(rita.page, 'Chat Room: Open Chat Panel');
    await eventually('the panel shows the room', async () => /Connected to 127\.0\.0\.1:\d+ as rita/.test(await panelText(rita.page)), 20_000);
  });
});
