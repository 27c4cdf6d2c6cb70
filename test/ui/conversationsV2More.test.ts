// More of the protocol-2 chat as people use it, in real code-server windows
// with the packaged extension: the slash commands typed in the message box
// (/me, /topic, /kick, /dm, /leave, and the completion list that offers
// them), the same person in two windows whose unread and mention counts
// follow each other through the server's read markers, and older history
// paged in from the server by scrolling up with the mouse wheel. Each step
// is checked in what each person sees. Screenshots go to artifacts/ui/.
import * as assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { ServerProcess } from '../support/serverProcess';
import { V2Client } from '../support/v2Client';
import { artifactsDir, closeChromium, launchChromium, openWorkbench, runCommand, saveScreenshot, startPerson, type Person } from './harness';
import { chatFrame, delay, draftInPanel, eventually, joinThroughPrompts, messageTexts, panelText, sendInPanel, typeDraft } from './panelSteps';

/** Events the server replays on join, and events in a history page: small, so a room of 120 messages takes several pages. */
const REPLAYED = 30;
const PAGE = 25;
const ARCHIVED = 120;

/** The conversations in a window's list, in order, the one shown marked with `*`. */
async function conversationTitles(page: Page): Promise<string[]> {
  return (await chatFrame(page)).locator('#conversation-list li').evaluateAll((items) => items.map((item) => `${item.getAttribute('data-title')}${item.classList.contains('active') ? '*' : ''}`));
}

async function showConversation(page: Page, title: string): Promise<void> {
  await (await chatFrame(page)).locator(`#conversation-list li[data-title="${title}"] .conversation-name`).click();
  await eventually(`${title} shown`, async () => (await conversationTitles(page)).includes(`${title}*`));
}

/** The unread and mention counts a window shows for one conversation ('' when there is none). */
async function countsOf(page: Page, title: string): Promise<{ unread: string; mentions: string }> {
  const item = (await chatFrame(page)).locator(`#conversation-list li[data-title="${title}"]`);
  const textOf = async (selector: string) => ((await item.locator(selector).count()) === 0 ? '' : (await item.locator(selector).innerText()).trim());
  return { unread: await textOf('.unread-count'), mentions: await textOf('.mention-count') };
}

async function composerNotice(page: Page): Promise<string> {
  return (await (await chatFrame(page)).locator('#composer-notice').innerText()).trim();
}

async function memberNames(page: Page): Promise<string[]> {
  return (await chatFrame(page)).locator('#member-list button.member-name').allInnerTexts();
}

/** Copies the extension's own log (its output channel) of a person's windows under artifacts/ui/, for a failure report. */
function keepExtensionLog(person: Person, name: string): void {
  const logs = join(person.host.userDataDir, 'logs');
  if (!existsSync(logs)) return;
  const found = readdirSync(logs, { recursive: true, encoding: 'utf8' }).filter((path) => /Chat Room\.log$/.test(path));
  writeFileSync(join(artifactsDir(), name), found.map((path) => `== ${path}\n${readFileSync(join(logs, path), 'utf8')}`).join('\n'));
}

/** Types into the box key by key, as a person does, so the completion list follows. */
async function typeKeys(page: Page, text: string): Promise<void> {
  const input = (await chatFrame(page)).locator('#input');
  await input.click();
  await input.pressSequentially(text, { delay: 20 });
}

describe('Chat Room: slash commands, one person in two windows, and older history by scrolling (protocol 2)', function () {
  this.timeout(300_000);
  let browser: Browser;
  let alice: Person;
  let bob: Person;
  let server: ServerProcess;
  let seeder: V2Client | undefined;
  let aliceAgain: Page | undefined;

  before(async () => {
    server = await ServerProcess.start({ args: ['--rate-burst', '400', '--replay-events', String(REPLAYED), '--history-page-events', String(PAGE)] });
    browser = await launchChromium();
    alice = await startPerson(browser, 'alice', { settings: { 'workbench.colorTheme': 'Default Dark Modern' } });
    bob = await startPerson(browser, 'bob', { settings: { 'workbench.colorTheme': 'Default Light Modern' } });
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') {
      for (const person of [alice, bob]) if (person) await saveScreenshot(person.page, `failed-v2more-${person.name}-${this.currentTest.title}`).catch(() => undefined);
      if (aliceAgain) await saveScreenshot(aliceAgain, `failed-v2more-alice-second-window-${this.currentTest.title}`).catch(() => undefined);
      for (const person of [alice, bob]) if (person) keepExtensionLog(person, `failed-v2more-${person.name}-extension.log`);
    }
  });

  after(async () => {
    seeder?.close();
    await aliceAgain?.close().catch(() => undefined);
    await bob?.stop();
    await alice?.stop();
    await server?.dispose();
    if (browser) await closeChromium(browser);
  });

  it('alice makes the lobby (so she owns it) and bob joins her there', async () => {
    for (const person of [alice, bob]) {
      await joinThroughPrompts(person.page, `127.0.0.1:${server.port}`, person.name, 'lobby');
      await eventually(`${person.name} connected`, async () => new RegExp(`Connected to .* as ${person.name}`).test(await panelText(person.page)), 30_000);
    }
    await eventually('alice sees bob among the members', async () => (await memberNames(alice.page)).includes('bob'));
  });

  it('"/" opens the command list; Tab and Enter pick a command; /me reaches bob as an action', async () => {
    const frame = await chatFrame(alice.page);
    const labels = () => frame.locator('#completions [role="option"] .completion-label').allInnerTexts();
    await typeDraft(alice.page, '');
    await typeKeys(alice.page, '/');
    await eventually('the seven commands offered', async () => (await labels()).join() === '/join #room,/leave,/dm name,/me action,/topic text,/search text,/kick name');
    await saveScreenshot(alice.page, 'v2more-slash-completion');
    await typeKeys(alice.page, 'to');
    await eventually('only /topic left', async () => (await labels()).join() === '/topic text');
    await frame.locator('#input').press('Tab');
    await eventually('Tab took /topic', async () => (await draftInPanel(alice.page)) === '/topic ');
    assert.equal(await frame.locator('#completions [role="option"]').count(), 0, 'the list closes once picked');

    await typeDraft(alice.page, '');
    await typeKeys(alice.page, '/me');
    await eventually('only /me left', async () => (await labels()).join() === '/me action');
    await frame.locator('#input').press('Enter');
    await eventually('Enter took /me and sent nothing', async () => (await draftInPanel(alice.page)) === '/me ');
    await typeKeys(alice.page, 'waves');
    await frame.locator('#input').press('Enter');

    const bobFrame = await chatFrame(bob.page);
    const action = bobFrame.locator('#messages li.message .body[data-text="_alice waves_"]');
    await eventually('bob sees alice\'s action', async () => (await action.count()) === 1);
    assert.equal((await action.innerText()).trim(), 'alice waves', 'the action reads as a sentence, without the underscores');
    assert.equal((await action.locator('em').innerText()).trim(), 'alice waves', 'and is set apart (in italics)');
    assert.equal(await draftInPanel(alice.page), '', 'the box is empty once sent');
    await saveScreenshot(bob.page, 'v2more-me-action');
  });

  it('/topic by the owner reaches bob; bob\'s /topic is refused to him plainly and his text stays in the box', async () => {
    await sendInPanel(alice.page, '/topic Release on Friday');
    const bobFrame = await chatFrame(bob.page);
    await eventually('bob sees the new topic', async () => (await bobFrame.locator('#messages li.system.topic').allInnerTexts()).some((text) => text.includes('alice set the topic: Release on Friday')));
    // Within a few seconds: the list of conversations is asked for again only every 20 s, and the topic event must not wait for it.
    await eventually('the topic on the room\'s title', async () => (await bobFrame.locator('#room-title').getAttribute('title')) === 'Release on Friday', 8_000);

    await sendInPanel(bob.page, '/topic Release on Monday');
    await eventually('bob is told why not', async () => /owner/i.test(await composerNotice(bob.page)), 15_000);
    assert.equal(await draftInPanel(bob.page), '/topic Release on Monday', 'what he typed is still in the box');
    await saveScreenshot(bob.page, 'v2more-topic-refused');
    await typeDraft(bob.page, '');
    assert.ok(!(await (await chatFrame(alice.page)).locator('#messages li.system.topic').allInnerTexts()).some((text) => text.includes('Monday')), 'the topic did not change for alice');
  });

  it('/kick by someone else is refused visibly; by the owner it removes bob, who is told so', async () => {
    await sendInPanel(alice.page, '/join planning');
    await eventually('planning shown for alice', async () => (await conversationTitles(alice.page)).includes('planning*'));
    await sendInPanel(bob.page, '/join planning');
    await eventually('planning shown for bob', async () => (await conversationTitles(bob.page)).includes('planning*'));
    await eventually('alice sees bob in planning', async () => (await memberNames(alice.page)).includes('bob'));

    await sendInPanel(bob.page, '/kick alice');
    await eventually('bob is told why not', async () => /owner/i.test(await composerNotice(bob.page)), 15_000);
    assert.equal(await draftInPanel(bob.page), '/kick alice', 'what he typed is still in the box');
    assert.ok((await memberNames(bob.page)).includes('alice'), 'alice is still there');
    await typeDraft(bob.page, '');

    await sendInPanel(alice.page, '/kick bob');
    await eventually('bob is told he was removed', async () => (await panelText(bob.page)).includes('You were removed from planning by alice'), 20_000);
    await eventually('planning no longer an open conversation of bob\'s', async () => {
      const item = (await chatFrame(bob.page)).locator('#conversation-list li[data-title="planning"]');
      return (await item.count()) === 0 || !(await item.innerText()).includes('planning') || (await item.getAttribute('class'))?.includes('parted') === true;
    }, 20_000);
    await eventually('alice no longer sees bob in planning', async () => !(await memberNames(alice.page)).includes('bob'));
    await saveScreenshot(bob.page, 'v2more-kicked');
  });

  it('/dm bob opens a direct message with bob for alice; a /dm or /join the server refuses stays in the box', async () => {
    await sendInPanel(alice.page, '/dm nobody-here');
    await eventually('alice is told nobody has that name', async () => /nobody-here/i.test(await composerNotice(alice.page)), 15_000);
    assert.equal(await draftInPanel(alice.page), '/dm nobody-here', 'what she typed is still in the box');
    await typeDraft(alice.page, '');
    await sendInPanel(alice.page, '/join dm:not-a-room');
    await eventually('alice is told the room name is not allowed', async () => (await composerNotice(alice.page)).length > 0, 15_000);
    assert.equal(await draftInPanel(alice.page), '/join dm:not-a-room', 'what she typed is still in the box');
    await typeDraft(alice.page, '');

    await sendInPanel(alice.page, '/dm bob');
    await eventually('the DM with bob shown for alice', async () => (await conversationTitles(alice.page)).includes('bob*'), 20_000);
    assert.equal(await draftInPanel(alice.page), '');
    await sendInPanel(alice.page, 'just between us');
    await eventually('alice sees it sent in the DM', async () => (await messageTexts(alice.page)).includes('just between us'));
  });

  it('/leave takes the room out of bob\'s list; alice sees him go quietly', async () => {
    await showConversation(bob.page, 'lobby');
    await sendInPanel(alice.page, '/join standup');
    await eventually('standup shown for alice', async () => (await conversationTitles(alice.page)).includes('standup*'));
    await sendInPanel(bob.page, '/join standup');
    await eventually('standup shown for bob', async () => (await conversationTitles(bob.page)).includes('standup*'));
    await eventually('alice sees bob in standup', async () => (await memberNames(alice.page)).includes('bob'));

    await sendInPanel(bob.page, '/leave');
    await eventually('standup gone from bob\'s list', async () => !(await conversationTitles(bob.page)).some((title) => title.startsWith('standup')), 20_000);
    assert.equal(await draftInPanel(bob.page), '', 'the command left the box');
    assert.ok((await conversationTitles(bob.page)).some((title) => title.startsWith('lobby')), 'the lobby stays');
    assert.ok(!(await conversationTitles(bob.page)).some((title) => title.startsWith('planning')), 'planning, which he was removed from, has not come back');
    await eventually('bob gone from alice\'s members', async () => !(await memberNames(alice.page)).includes('bob'));
    const aliceFrame = await chatFrame(alice.page);
    assert.equal(await aliceFrame.locator('#messages li.system.alert').count(), 0, 'no alarm about a departure on purpose');
    assert.ok(!/bob (lost|was disconnected)/i.test(await aliceFrame.locator('#messages').innerText()), 'his leaving is not shown as a lost connection');
    await saveScreenshot(alice.page, 'v2more-left');
  });

  it('scrolling up with the mouse wheel brings older history from the server above, in order, without duplicates, and keeps the place', async () => {
    seeder = await V2Client.hello(server.port, 'seeder');
    await seeder.join('archive');
    for (let index = 1; index <= ARCHIVED; index++) await seeder.say('archive', `archive ${index}`);

    await sendInPanel(alice.page, '/join archive');
    await eventually('archive shown for alice', async () => (await conversationTitles(alice.page)).includes('archive*'));
    const archived = async () => (await messageTexts(alice.page)).filter((text) => text.startsWith('archive '));
    await eventually('the newest messages shown', async () => (await archived()).at(-1) === `archive ${ARCHIVED}`);
    const first = await archived();
    assert.ok(first.length < ARCHIVED - PAGE, `only the replay at first (${first.length} of ${ARCHIVED})`);

    const frame = await chatFrame(alice.page);
    const list = frame.locator('#messages');
    // Watches, in the page, what the person had on screen when the list reached the top (the topmost
    // message and how far below the list's top edge it was), up to the first change of the list.
    await frame.evaluate(`(() => {
      const list = document.getElementById('messages');
      const watch = { record: undefined, frozen: false };
      window.__scrollWatch = watch;
      const topmost = () => {
        const top = list.getBoundingClientRect().top;
        for (const item of list.querySelectorAll('li.message')) {
          const box = item.getBoundingClientRect();
          if (box.bottom > top + 1) return { seq: item.getAttribute('data-seq'), offset: box.top - top };
        }
        return undefined;
      };
      document.addEventListener('scroll', (event) => {
        if (event.target === list && !watch.frozen && list.scrollTop <= 40) watch.record = topmost();
      }, true);
      new MutationObserver(() => { if (watch.record) watch.frozen = true; }).observe(list, { childList: true, subtree: true, characterData: true });
    })()`);
    const watch = () => frame.evaluate('window.__scrollWatch') as Promise<{ record?: { seq: string; offset: number }; frozen: boolean }>;
    const offsetOf = (seq: string) =>
      frame.evaluate(`(() => {
        const list = document.getElementById('messages');
        const item = list.querySelector('li.message[data-seq="${seq}"]');
        return item ? item.getBoundingClientRect().top - list.getBoundingClientRect().top : null;
      })()`) as Promise<number | null>;
    const scrollTop = () => list.evaluate((element) => element.scrollTop);
    const settled = async () => {
      const before = await scrollTop();
      await delay(300);
      return before === (await scrollTop());
    };

    const box = await list.boundingBox();
    assert.ok(box, 'the message list is on screen');
    await alice.page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    let pagesSeen = 0;
    for (let step = 0; step < 80 && (await archived())[0] !== 'archive 1'; step++) {
      await frame.evaluate('window.__scrollWatch.record = undefined; window.__scrollWatch.frozen = false');
      await alice.page.mouse.wheel(0, -400);
      await eventually('the wheel to have scrolled, or older rows to have come in', async () => (await watch()).frozen || (await settled()), 20_000);
      const seen = await watch();
      if (!seen.frozen || !seen.record) continue;
      // Something came in above what was on screen: once it settles, that message is where it was.
      pagesSeen += 1;
      await eventually('the list to settle', settled, 20_000);
      const offset = await offsetOf(seen.record.seq);
      assert.ok(offset !== null, `message ${seen.record.seq} is still drawn`);
      assert.ok(Math.abs(offset - seen.record.offset) <= 24, `message ${seen.record.seq} stayed in place: ${seen.record.offset.toFixed(0)} px below the top before, ${offset.toFixed(0)} px after`);
      const shown = await archived();
      const numbers = shown.map((text) => Number(text.slice('archive '.length)));
      assert.deepEqual(numbers, Array.from({ length: numbers.length }, (_, index) => numbers[0] + index), 'older messages in order, none twice, none missing');
    }
    const all = await archived();
    assert.deepEqual(all, Array.from({ length: ARCHIVED }, (_, index) => `archive ${index + 1}`), 'the whole history, paged in from the server');
    assert.ok(pagesSeen >= Math.ceil((ARCHIVED - first.length) / PAGE), `at least one change per page (${pagesSeen})`);
    await saveScreenshot(alice.page, 'v2more-older-history');
  });

  it('alice in a second window of the same VS Code: both show the same unread and mention counts, and reading in one clears the other', async () => {
    // One code-server, two browser windows on it: the same person's installation (one global state, one
    // Secret Storage with her identity key), each window with its own extension host and connection.
    aliceAgain = await alice.context.newPage();
    await openWorkbench(aliceAgain, alice.host);
    await runCommand(aliceAgain, 'Chat Room: Open Chat Panel');
    await eventually('the second window in alice\'s room by itself', async () => /Connected to .* as alice/.test(await panelText(aliceAgain!)), 30_000);

    // Both windows look at another room, so the lobby's news stays unread in each.
    await showConversation(alice.page, 'planning');
    if ((await conversationTitles(aliceAgain)).some((title) => title.startsWith('planning'))) await showConversation(aliceAgain, 'planning');
    else {
      await sendInPanel(aliceAgain, '/join planning');
      await eventually('planning shown in the second window', async () => (await conversationTitles(aliceAgain!)).includes('planning*'));
    }
    await showConversation(bob.page, 'lobby');
    await sendInPanel(bob.page, 'anyone around?');
    await sendInPanel(bob.page, '@alice can you look at the build?');
    for (const [label, page] of [['first', alice.page], ['second', aliceAgain]] as const) {
      await eventually(`two unread and one mention in the lobby, in the ${label} window`, async () => {
        const counts = await countsOf(page, 'lobby');
        return counts.unread === '2' && counts.mentions === '@1';
      }, 30_000);
    }
    await saveScreenshot(aliceAgain, 'v2more-second-window-unread');

    await showConversation(alice.page, 'lobby');
    await eventually('the first window read the lobby', async () => (await messageTexts(alice.page)).includes('@alice can you look at the build?') && (await countsOf(alice.page, 'lobby')).unread === '');
    await eventually('the counts gone in the second window too', async () => {
      const counts = await countsOf(aliceAgain!, 'lobby');
      return counts.unread === '' && counts.mentions === '';
    }, 30_000);
    await saveScreenshot(aliceAgain, 'v2more-second-window-read');
  });
});
