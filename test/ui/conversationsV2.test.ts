// Two people in their own VS Code (code-server) with the packaged extension,
// on a protocol 2 server, plus a classic client in the same room: the chat in
// the Panel with its conversation list and badge, replies, edits (Up-arrow)
// and deletions, reactions, typing, slash commands and search, each checked
// in what each person sees. Screenshots go to artifacts/ui/.
import * as assert from 'node:assert/strict';
import type { Browser, Frame, Page } from 'playwright-core';
import { ServerProcess } from '../support/serverProcess';
import { TestClient } from '../support/testClient';
import { closeChromium, launchChromium, saveScreenshot, startPerson, type Person } from './harness';
import { chatFrame, eventually, joinThroughPrompts, messageTexts, panelText, sendInPanel } from './panelSteps';

/** The badge on the chat's tab in the Panel, as shown ('' when there is none). */
async function chatBadge(page: Page): Promise<string> {
  const badge = page.locator('.part.panel .composite-bar .action-item', { hasText: /chat room/i }).locator('.badge');
  if ((await badge.count()) === 0 || !(await badge.first().isVisible())) return '';
  return (await badge.first().innerText()).trim();
}

/** The rendered message whose source text is `text`. */
function messageWith(frame: Frame, text: string) {
  return frame.locator('#messages li.message', { has: frame.locator(`.body[data-text="${text.replace(/"/g, '\\"')}"]`) });
}

describe('Chat Room: conversations, replies, edits, reactions and slash commands (protocol 2)', function () {
  this.timeout(300_000);
  let browser: Browser;
  let alice: Person;
  let bob: Person;
  let server: ServerProcess;
  let carol: TestClient;

  before(async () => {
    server = await ServerProcess.start({ classic: true, args: ['--rate-burst', '100'] });
    browser = await launchChromium();
    alice = await startPerson(browser, 'alice', { settings: { 'workbench.colorTheme': 'Default Dark Modern' } });
    bob = await startPerson(browser, 'bob', { settings: { 'workbench.colorTheme': 'Default Light Modern' } });
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') {
      for (const person of [alice, bob]) if (person) await saveScreenshot(person.page, `failed-v2-${person.name}-${this.currentTest.title}`).catch(() => undefined);
    }
  });

  after(async () => {
    carol?.close();
    await bob?.stop();
    await alice?.stop();
    await server?.dispose();
    if (browser) await closeChromium(browser);
  });

  it('both join the lobby; the chat opens in the Panel with the lobby in its list; a classic client joins too', async () => {
    for (const person of [alice, bob]) {
      await joinThroughPrompts(person.page, `127.0.0.1:${server.port}`, person.name, 'lobby');
      await eventually(`${person.name} connected`, async () => new RegExp(`Connected to .* as ${person.name}`).test(await panelText(person.page)));
    }
    assert.equal(await alice.page.locator('.part.editor .tab', { hasText: 'Chat' }).count(), 0, 'not an editor tab');
    const frame = await chatFrame(alice.page);
    assert.deepEqual(await frame.locator('#conversation-list li').evaluateAll((items) => items.map((item) => item.getAttribute('data-title'))), ['lobby']);
    carol = await TestClient.connect(server.classicPort!);
    await carol.nextLine((line) => line.includes('Greetings'));
    carol.write('carol\n');
    await carol.nextLine((line) => line.startsWith('Welcome carol'));
    await eventually('alice sees carol', async () => (await panelText(alice.page)).includes('carol joined'));
  });

  it('alice answers bob with a reply; bob sees the quote, and a click on it goes to the original; carol sees "alice (to bob)"', async () => {
    await sendInPanel(bob.page, 'what about the release?');
    const aliceFrame = await chatFrame(alice.page);
    await eventually('alice sees the question', async () => (await messageTexts(alice.page)).includes('what about the release?'));
    const question = messageWith(aliceFrame, 'what about the release?');
    await question.hover();
    await question.locator('.reply-button').click();
    await eventually('the reply banner', async () => (await aliceFrame.locator('#compose-banner').innerText()).includes('Replying to bob'));
    await sendInPanel(alice.page, 'Friday, after the tests pass');
    const bobFrame = await chatFrame(bob.page);
    await eventually('bob sees the reply with its quote', async () => (await messageWith(bobFrame, 'Friday, after the tests pass').locator('.reply-quote').innerText()).includes('bob'));
    await messageWith(bobFrame, 'Friday, after the tests pass').locator('.reply-quote').click();
    await eventually('the original marked', async () => (await messageWith(bobFrame, 'what about the release?').getAttribute('class'))?.includes('revealed') === true, 5_000);
    await carol.nextLine((line) => line === 'alice (to bob): Friday, after the tests pass');
  });

  it('alice edits her last message with Up-arrow; everyone sees the new text and "(edited)"', async () => {
    const aliceFrame = await chatFrame(alice.page);
    const input = aliceFrame.locator('#input');
    await input.click();
    await input.fill('');
    await input.press('ArrowUp');
    await eventually('her message in the box', async () => (await input.inputValue()) === 'Friday, after the tests pass');
    await input.fill('Friday, after the tests pass on CI');
    await input.press('Enter');
    const bobFrame = await chatFrame(bob.page);
    await eventually('bob sees the edit', async () => (await messageTexts(bob.page)).includes('Friday, after the tests pass on CI'));
    assert.equal(await messageWith(bobFrame, 'Friday, after the tests pass on CI').locator('.edited').innerText(), '(edited)');
    assert.ok(!(await messageTexts(bob.page)).includes('Friday, after the tests pass'), 'the old text is gone');
    await carol.nextLine((line) => line === 'alice (edited): Friday, after the tests pass on CI');
  });

  it('bob reacts from the picker; alice sees the chip with who reacted, and her click adds hers', async () => {
    const bobFrame = await chatFrame(bob.page);
    const message = messageWith(bobFrame, 'Friday, after the tests pass on CI');
    await message.hover();
    await message.locator('.react-button').click();
    await message.locator('.emoji-picker button', { hasText: '🎉' }).click();
    const aliceFrame = await chatFrame(alice.page);
    const chip = messageWith(aliceFrame, 'Friday, after the tests pass on CI').locator('.reaction[data-emoji="🎉"]');
    await eventually('alice sees 🎉 1 from bob', async () => (await chip.count()) === 1 && (await chip.innerText()).replace(/\s+/g, ' ').trim() === '🎉 1' && (await chip.getAttribute('title')) === 'bob');
    await chip.click();
    await eventually('two 🎉 for bob too', async () => (await messageWith(bobFrame, 'Friday, after the tests pass on CI').locator('.reaction[data-emoji="🎉"] .reaction-count').innerText()) === '2');
    assert.equal(await chip.getAttribute('aria-pressed'), 'true', 'alice\'s own reaction is marked');
    await saveScreenshot(alice.page, 'v2-reply-edit-reactions-dark');
    await saveScreenshot(bob.page, 'v2-reply-edit-reactions-light');
  });

  it('alice sees "bob is typing…" while he writes, also right after his last message, and it goes once he sends', async () => {
    // A message ends a typing run: what bob writes straight after it, at a person's pace, shows as typing too.
    await sendInPanel(bob.page, 'one moment');
    await eventually('bob\'s message at alice', async () => (await messageTexts(alice.page)).includes('one moment'));
    const bobInput = (await chatFrame(bob.page)).locator('#input');
    await bobInput.click();
    await bobInput.pressSequentially('let me check', { delay: 120 });
    const aliceFrame = await chatFrame(alice.page);
    await eventually('the typing line', async () => (await aliceFrame.locator('#typing').innerText()) === 'bob is typing…', 10_000);
    await bobInput.press('Enter');
    await eventually('the typing line gone', async () => (await aliceFrame.locator('#typing').innerText()) === '' && (await messageTexts(alice.page)).includes('let me check'));
  });

  it('/search finds a message and jumps to it; /join opens a second room beside the lobby, whose unread count and the view\'s badge follow the lobby', async () => {
    await sendInPanel(alice.page, '/search RELEASE');
    const aliceFrame = await chatFrame(alice.page);
    await eventually('a search hit', async () => (await aliceFrame.locator('#search-results .hit-text').allInnerTexts()).includes('what about the release?'));
    await aliceFrame.locator('#search-results .search-hit').first().click();
    await aliceFrame.locator('#search-results button[aria-label="Close search"]').click();

    await sendInPanel(alice.page, '/join dev');
    await eventually('dev beside the lobby, shown', async () => {
      const titles = await (await chatFrame(alice.page)).locator('#conversation-list li').evaluateAll((items) => items.map((item) => `${item.getAttribute('data-title')}${item.classList.contains('active') ? '*' : ''}`));
      return titles.join() === 'lobby,dev*';
    });
    assert.equal(await chatBadge(alice.page), '', 'no badge while nothing is unread');
    // bob names alice the way the box offers it: "@al", Enter takes "alice" from the list, and the next Enter sends.
    const bobFrame = await chatFrame(bob.page);
    const bobInput = bobFrame.locator('#input');
    await bobInput.click();
    await bobInput.fill('ping @al');
    await eventually('alice offered', async () => (await bobFrame.locator('#completions [role="option"]').allInnerTexts()).some((text) => text.startsWith('alice')));
    await bobInput.press('Enter');
    await eventually('the name taken', async () => (await bobInput.inputValue()) === 'ping @alice ');
    await bobInput.pressSequentially('are you there?');
    await bobInput.press('Enter');
    await eventually('one unread in the lobby, a mention', async () => {
      const lobby = (await chatFrame(alice.page)).locator('#conversation-list li[data-title="lobby"]');
      return (await lobby.locator('.unread-count').innerText()) === '1' && (await lobby.locator('.mention-count').innerText()) === '@1';
    });
    // The view's badge, on its container in the Panel.
    await eventually('the badge', async () => (await chatBadge(alice.page)) === '1');
    await saveScreenshot(alice.page, 'v2-conversations-badge');
    await (await chatFrame(alice.page)).locator('#conversation-list li[data-title="lobby"] .conversation-name').click();
    await eventually('the lobby read', async () => (await (await chatFrame(alice.page)).locator('#conversation-list li[data-title="lobby"] .unread-count').count()) === 0 && (await messageTexts(alice.page)).includes('ping @alice are you there?'));
    await eventually('the badge gone once the lobby is read', async () => (await chatBadge(alice.page)) === '', 10_000);
  });

  it('alice deletes a message of hers; it is gone for bob', async () => {
    await sendInPanel(alice.page, 'oops, wrong room');
    await eventually('bob sees it', async () => (await messageTexts(bob.page)).includes('oops, wrong room'));
    const aliceFrame = await chatFrame(alice.page);
    const message = messageWith(aliceFrame, 'oops, wrong room');
    await eventually('sent', async () => (await message.locator('.delete-button').count()) === 1);
    await message.hover();
    await message.locator('.delete-button').click();
    await eventually('gone for bob', async () => !(await messageTexts(bob.page)).includes('oops, wrong room'));
    await eventually('gone for alice', async () => !(await messageTexts(alice.page)).includes('oops, wrong room'));
  });

  it('bob starts a DM from alice\'s name in the member list; alice sees it among her conversations', async () => {
    const bobFrame = await chatFrame(bob.page);
    await bobFrame.locator('#member-list button.member-name', { hasText: 'alice' }).click();
    await eventually('the DM shown for bob', async () => (await (await chatFrame(bob.page)).locator('#conversation-list li.active').getAttribute('data-title')) === 'alice');
    await sendInPanel(bob.page, 'a word in private');
    // The server tells alice's window of the new DM at once (conversationAdded), not at its next look at her conversations.
    await eventually('the DM in alice\'s list', async () => (await (await chatFrame(alice.page)).locator('#conversation-list li[data-title="bob"]').count()) === 1, 10_000);
    await (await chatFrame(alice.page)).locator('#conversation-list li[data-title="bob"] .conversation-name').click();
    await eventually('alice reads it', async () => (await messageTexts(alice.page)).includes('a word in private'));
    await saveScreenshot(alice.page, 'v2-direct-message');
  });
});
