// How the panel lays out a conversation, in a real Chromium page running the
// packaged webview script (test/ui/panelPage.ts): runs that share a header,
// date separators, the "new since you were last here" divider, mentions,
// quiet joins beside a clear shutdown and outage, long messages behind
// "Show more", highlighted code with Copy and Insert, and a list of 10,000
// messages that draws only its newest rows.
import * as assert from 'node:assert/strict';
import type { Browser } from 'playwright-core';
import type { ChatEntry, MessageEntry } from '../../shared/webviewMessages';
import { closeChromium, launchChromium } from './harness';
import { IN_LOBBY, PanelPage } from './panelPage';
import { saveScreenshot } from './harness';

// Runs in the browser; the node tsconfig has no DOM library.
declare function getComputedStyle(element: unknown): { opacity: string };

const MINUTE = 60_000;
const now = Date.now();
const said = (seq: number, from: string, ts: number, text = `message ${seq}`, mine = false): MessageEntry => ({ kind: 'message', seq, from, text, ts, mine, id: `id-${seq}` });

describe('Conversation layout in the panel, in a real browser', function () {
  this.timeout(60_000);
  let browser: Browser | undefined;
  const pages: PanelPage[] = [];

  before(async () => {
    browser = await launchChromium();
  });

  afterEach(async () => {
    for (const page of pages.splice(0)) await page.close().catch(() => undefined);
  });

  after(async () => {
    if (browser) await closeChromium(browser);
  });

  async function open(kept?: unknown): Promise<PanelPage> {
    const page = await PanelPage.open(browser!, kept);
    pages.push(page);
    return page;
  }

  it('gives a run from one person one header, shows its times on hover, and separates the days', async () => {
    const panel = await open();
    const yesterday = now - 24 * 60 * MINUTE;
    await panel.snapshot([said(1, 'alice', yesterday, 'from yesterday'), said(2, 'alice', now - 10 * MINUTE, 'first'), said(3, 'alice', now - 9 * MINUTE, 'second'), said(4, 'alice', now - 8 * MINUTE, 'third'), said(5, 'carol', now - 7 * MINUTE, 'carol here'), said(6, 'alice', now - MINUTE, 'after a gap')]);
    const page = panel.page;
    assert.deepEqual(await page.locator('#messages li.date-separator').allInnerTexts(), ['Yesterday', 'Today']);
    assert.deepEqual(await page.locator('#messages li.message:not(.continued) .from').allInnerTexts(), ['alice', 'alice', 'carol', 'alice']);
    assert.deepEqual(await page.locator('#messages li.message.continued .body').evaluateAll((bodies) => bodies.map((body) => body.getAttribute('data-text'))), ['second', 'third']);
    const continuedTime = page.locator('#messages li.message.continued .continued-meta').first();
    assert.equal(await continuedTime.evaluate((element) => getComputedStyle(element).opacity), '0', 'a continued message hides its time');
    await page.locator('#messages li.message.continued').first().hover();
    await page.waitForTimeout(50);
    assert.equal(await continuedTime.evaluate((element) => getComputedStyle(element).opacity), '1', 'and shows it on hover');
    // Every message still names its author for a screen reader.
    assert.match(await page.locator('#messages li.message.continued').first().textContent() ?? '', /alice/);
  });

  it('marks where the new messages begin since the person was last here, and remembers this visit', async () => {
    const history = [said(1, 'alice', now - 5 * MINUTE), said(2, 'bob', now - 4 * MINUTE, 'mine', true), said(3, 'alice', now - 3 * MINUTE), said(4, 'carol', now - 2 * MINUTE), said(5, 'carol', now - MINUTE)];
    const panel = await open({ draft: '', readUpTo: { lobby: 2 } });
    await panel.snapshot(history);
    const order = await panel.page.locator('#messages > li').evaluateAll((items) => items.map((item) => (item.id === 'unread-divider' ? 'divider' : (item.querySelector('.body')?.getAttribute('data-text') ?? item.className))));
    assert.deepEqual(order.slice(order.indexOf('divider') - 1), ['mine', 'divider', 'message 3', 'message 4', 'message 5']);
    assert.deepEqual(await panel.kept(), { draft: '', readUpTo: { lobby: 5 } }, 'what was on screen counts as seen');
    const again = await open(await panel.kept());
    await again.snapshot(history);
    assert.equal(await again.page.locator('#unread-divider').count(), 0, 'nothing new, no divider');
  });

  it('highlights a message that mentions me', async () => {
    const panel = await open();
    await panel.snapshot([said(1, 'alice', now, 'hey @bob, look'), said(2, 'alice', now + 1, 'mail me at x@bob.com'), said(3, 'carol', now + 2, '@bobby?')]);
    assert.deepEqual(await panel.page.locator('#messages li.message.mentions-me .body').evaluateAll((bodies) => bodies.map((body) => body.getAttribute('data-text'))), ['hey @bob, look']);
  });

  it('keeps joins and leaves quiet, and shows a server shutdown and an outage plainly', async () => {
    const panel = await open();
    const entries: ChatEntry[] = [
      { kind: 'joined', seq: 1, name: 'dave', ts: now - 5 * MINUTE },
      { kind: 'left', seq: 2, name: 'dave', ts: now - 5 * MINUTE, reason: 'quit' },
      { kind: 'joined', seq: 3, name: 'erin', ts: now - 4 * MINUTE },
      said(4, 'alice', now - 3 * MINUTE, 'before the restart'),
      { kind: 'left', seq: 5, name: 'alice', ts: now - 2 * MINUTE, reason: 'shutdown' },
      { kind: 'left', seq: 6, name: 'carol', ts: now - 2 * MINUTE, reason: 'shutdown' },
    ];
    await panel.snapshot(entries);
    await panel.post({ type: 'status', status: { ...IN_LOBBY, connection: { kind: 'reconnecting', address: '127.0.0.1:33000', retryAt: Date.now() + 2_000, attempt: 1, reason: 'The server is shutting down' } } });
    const page = panel.page;
    assert.equal(await page.locator('#messages li.system.presence').count(), 1, 'three arrivals and departures, one quiet line');
    const alerts = page.locator('#messages li.system.alert');
    assert.deepEqual(
      (await alerts.allInnerTexts()).map((text) => text.replace(/\d\d:\d\d( [AP]M)?/g, 'HH:MM')),
      ['The server shut down at HH:MM; it took alice, carol out of the room.', 'Connection lost at HH:MM (The server is shutting down). Reconnecting…'],
    );
    await panel.post({ type: 'status', status: IN_LOBBY });
    assert.match(await alerts.nth(1).innerText(), /back at \d\d:\d\d( [AP]M)?, after \d+ s\.$/);
    assert.equal(await page.locator('#messages li.system.alert details').count(), 0, 'nothing about them is folded away');
  });

  it('collapses a long message behind "Show more", and opens it', async () => {
    const panel = await open();
    const long = Array.from({ length: 40 }, (_, index) => `line ${index + 1}`).join('\n');
    await panel.snapshot([said(1, 'alice', now, long), said(2, 'alice', now + 1, 'short')]);
    const page = panel.page;
    const body = page.locator('#messages li.message').first().locator('.body');
    const heights = () => body.evaluate((element) => ({ client: element.clientHeight, scroll: element.scrollHeight }));
    const collapsed = await heights();
    assert.ok(collapsed.client < collapsed.scroll / 2, `collapsed: ${JSON.stringify(collapsed)}`);
    assert.equal(await page.locator('button.show-more').count(), 1, 'only the long message has the button');
    const button = page.locator('button.show-more');
    assert.equal(await button.getAttribute('aria-expanded'), 'false');
    await button.click();
    const opened = await heights();
    assert.equal(opened.client, opened.scroll);
    assert.equal(await button.innerText(), 'Show less');
    assert.equal(await button.getAttribute('aria-expanded'), 'true');
  });

  it('highlights code with its language, and its Copy and Insert buttons hand the code to the host as written', async () => {
    const panel = await open();
    const code = 'const greeting: string = "hi";\n// a comment\nfunction f(n: number) { return n + 1; }';
    await panel.snapshot([said(1, 'alice', now, `src/app.ts:3\n\`\`\`typescript\n${code}\n\`\`\``), said(2, 'alice', now + 1, '```\nplain <b>text</b>\n```')]);
    const page = panel.page;
    const first = page.locator('#messages .code-block').first();
    for (const token of ['keyword', 'string', 'comment', 'title', 'number']) assert.ok((await first.locator(`.hljs-${token}`).count()) > 0, `a ${token} span`);
    assert.equal(await page.locator('#messages .code-block').nth(1).locator('[class*="hljs-"]').count(), 0, 'no language, no guessing');
    await first.hover();
    await first.locator('button.insert-code').click();
    await first.locator('button.copy-code').click();
    const posted = (await panel.posted()).filter((message) => message.type === 'insertCode' || message.type === 'copy');
    assert.deepEqual(posted, [
      { type: 'insertCode', text: `${code}\n` },
      { type: 'copy', text: `${code}\n` },
    ]);
    await saveScreenshot(page, 'panel-page-code-block');
  });

  it('draws only the newest rows of 10,000 messages, and more as the person scrolls up', async () => {
    const panel = await open();
    const entries = Array.from({ length: 10_000 }, (_, index) => said(index + 1, index % 3 === 0 ? 'alice' : 'carol', now - (10_000 - index) * MINUTE, `message number ${index + 1}`));
    await panel.snapshot(entries);
    const page = panel.page;
    const drawn = () => page.locator('#messages li.message').count();
    const first = await drawn();
    assert.ok(first >= 30 && first <= 150, `drew ${first} messages`);
    const list = page.locator('#messages');
    assert.ok(await list.evaluate((element) => element.scrollHeight - element.scrollTop - element.clientHeight < 48), 'at the bottom');
    assert.match(await page.locator('#messages .earlier-button').innerText(), /Show earlier messages \([\d,]+\)/);
    const oldestDrawn = page.locator('#messages li.message').first();
    const seq = await oldestDrawn.getAttribute('data-seq');
    // Scrolled to the top, the oldest drawn message sits here; once more are drawn above it, it must stay put.
    const topAtTop = await list.evaluate((element, wanted) => {
      element.scrollTop = 0;
      return element.querySelector(`li[data-seq="${wanted}"]`)!.getBoundingClientRect().top;
    }, seq);
    await page.waitForTimeout(300);
    assert.ok((await drawn()) >= first + 90, 'scrolling up drew more');
    assert.ok(Number(await page.locator('#messages li.message').first().getAttribute('data-seq')) < Number(seq), 'older messages came in above');
    const topAfter = await page.locator(`#messages li[data-seq="${seq}"]`).evaluate((element) => element.getBoundingClientRect().top);
    assert.ok(Math.abs(topAfter - topAtTop) < 5, `what was on screen stayed in place (${topAtTop} → ${topAfter})`);
  });

  it('draws more at once when the first rows do not fill a tall panel', async () => {
    const panel = await PanelPage.open(browser!, undefined, { width: 900, height: 2400 });
    pages.push(panel);
    // One person, one line each: a run of rows with no header, as short as rows get.
    const entries = Array.from({ length: 1_000 }, (_, index) => said(index + 1, 'alice', now - (1_000 - index) * 1_000, `line ${index + 1}`));
    await panel.snapshot(entries);
    const list = panel.page.locator('#messages');
    await panel.page.waitForTimeout(300);
    const { scrollable, drawn } = await list.evaluate((element) => ({ scrollable: element.scrollHeight > element.clientHeight, drawn: element.querySelectorAll('li.message').length }));
    assert.ok(scrollable, `the list can be scrolled up (${drawn} messages drawn)`);
    assert.ok(await list.evaluate((element) => element.scrollHeight - element.scrollTop - element.clientHeight < 48), 'still at the bottom');
  });

  it('keeps the reader in place when new messages arrive while they read older ones', async () => {
    const panel = await open();
    await panel.snapshot(Array.from({ length: 2_000 }, (_, index) => said(index + 1, index % 2 ? 'alice' : 'carol', now - (2_000 - index) * MINUTE, `older ${index + 1}`)));
    const page = panel.page;
    const list = page.locator('#messages');
    // Up a little, well away from both ends.
    await list.evaluate((element) => (element.scrollTop = element.scrollTop - 600));
    await page.waitForTimeout(200);
    const anchor = page.locator('#messages li.message').nth(10);
    const seq = await anchor.getAttribute('data-seq');
    const before = await anchor.evaluate((element) => element.getBoundingClientRect().top);
    await panel.post({ type: 'append', entries: Array.from({ length: 30 }, (_, index) => said(2_001 + index, 'alice', now + index, `new ${index + 1}`)) });
    await page.waitForTimeout(200);
    const after = await page.locator(`#messages li.message[data-seq="${seq}"]`).evaluate((element) => element.getBoundingClientRect().top);
    assert.equal(after, before, `message ${seq} stayed where the reader was looking`);
    assert.equal(await page.locator('#new-messages').isVisible(), true, 'and the marker says there is more below');
  });
});
