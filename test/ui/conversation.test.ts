// Two people, each in their own VS Code (code-server) with the packaged
// extension, drive Chat Room through the command palette and the chat panel
// in real Chromium, while a classic-protocol client and a hostile raw client
// join the same room.
import * as assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import type { Browser } from 'playwright-core';
import { freeLoopbackPort } from '../support/freeLoopbackPort';
import { TestClient } from '../support/testClient';
import { closeChromium, launchChromium, runCommand, saveScreenshot, startPerson, type Person } from './harness';
import { chatFrame, delay, eventually, joinThroughPrompts, panelText, sendInPanel } from './panelSteps';

describe('Chat Room: a conversation between two people', function () {
  this.timeout(300_000);
  let browser: Browser;
  let alice: Person;
  let bob: Person;
  let serverPort: number;
  let classicPort: number;
  const strayRequests: string[] = [];
  const rawClients: TestClient[] = [];

  before(async () => {
    serverPort = await freeLoopbackPort();
    classicPort = await freeLoopbackPort();
    browser = await launchChromium();
    alice = await startPerson(browser, 'alice', {
      settings: { 'chatRoom.server.port': serverPort, 'chatRoom.server.classicPort': classicPort, 'workbench.colorTheme': 'Default Dark Modern' },
    });
    bob = await startPerson(browser, 'bob', { settings: { 'workbench.colorTheme': 'Default Light Modern' } });
    for (const person of [alice, bob]) {
      const allowed = new URL(person.host.baseUrl).host;
      // Everything the workbench and its webviews load comes from the person's own code-server.
      person.context.on('request', (request) => {
        const url = new URL(request.url());
        if (!['data:', 'blob:', 'vscode-file:'].includes(url.protocol) && url.host !== allowed && !url.host.endsWith('.vscode-cdn.net')) {
          strayRequests.push(`${person.name}: ${request.url()}`);
        }
      });
    }
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') {
      for (const person of [alice, bob]) if (person) await saveScreenshot(person.page, `failed-${person.name}-${this.currentTest.title}`).catch(() => undefined);
    }
  });

  after(async () => {
    for (const client of rawClients) client.close();
    // The server alice started outlives her window on purpose; stopping her also stops it, by its recorded pid.
    await bob?.stop();
    await alice?.stop();
    if (browser) await closeChromium(browser);
  });

  it('alice starts the server and joins', async () => {
    await runCommand(alice.page, 'Chat Room: Start Chat Server');
    // Start Chat Server asks who may connect; this machine only is the first choice.
    const widget = alice.page.locator('.quick-input-widget');
    await eventually('the "Who may connect?" choice', async () => (await widget.isVisible()) && (await widget.innerText()).includes('This machine only'), 15_000);
    await alice.page.locator('.quick-input-widget .monaco-list-row', { hasText: 'This machine only' }).first().click();
    await eventually('the server to run', async () => (await alice.page.locator('.part.statusbar').innerText()).includes(`127.0.0.1:${serverPort}`));
    await joinThroughPrompts(alice.page, `127.0.0.1:${serverPort}`, 'alice', 'lobby');
    await eventually('alice connected in her panel', async () => /Connected to 127\.0\.0\.1:\d+ as alice/.test(await panelText(alice.page)));
  });

  it('bob joins, is refused a taken name, picks another, and both see each other', async () => {
    await joinThroughPrompts(bob.page, `127.0.0.1:${serverPort}`, 'Alice', 'lobby', [{ name: 'bob', expect: 'already taken on this server' }]);
    await eventually('bob connected', async () => /Connected to .* as bob/.test(await panelText(bob.page)));
    await eventually('alice sees bob join', async () => (await panelText(alice.page)).includes('bob joined'));
    await eventually('bob sees both members', async () => {
      const text = await panelText(bob.page);
      // The heading is upper-cased by CSS, so innerText shows it that way.
      return /members \(2\)/i.test(text) && text.includes('alice') && text.includes('bob (you)');
    });
  });

  it('they exchange messages', async () => {
    await sendInPanel(alice.page, 'Hi bob! The bug is in `src/app.ts:12` — see **this**.');
    await eventually('bob sees alice', async () => (await panelText(bob.page)).includes('Hi bob! The bug is in'));
    await sendInPanel(bob.page, 'On it, @alice. Shift+Enter works:');
    await eventually('alice sees bob', async () => (await panelText(alice.page)).includes('On it, @alice.'));
    const frame = await chatFrame(alice.page);
    assert.equal(await frame.locator('li.message.mine').count(), 1, 'alice has one message of her own, set apart');
    assert.equal(await frame.locator('li.message.mine .send-state').innerText(), 'sent');
    assert.equal(await frame.locator('li.message.mine strong').innerText(), 'this');
  });

  it('a classic-mode client joins and talks, and both panels show it', async () => {
    const classic = await TestClient.connect(classicPort);
    rawClients.push(classic);
    await classic.nextLine((line) => line.includes('Greetings from the cave'));
    classic.write('carol\n');
    await classic.nextLine((line) => line.startsWith('Welcome carol!'));
    classic.write('hello from a plain old socket\n');
    for (const person of [alice, bob]) {
      await eventually(`${person.name} sees carol`, async () => {
        const text = await panelText(person.page);
        return text.includes('carol joined') && text.includes('hello from a plain old socket');
      });
    }
    classic.write('{quit}\n');
    await eventually('alice sees carol leave', async () => (await panelText(alice.page)).includes('carol left'));
  });

  it('hostile text from a raw client renders inert: no script runs and no request leaves', async () => {
    const mallory = await TestClient.join(serverPort, 'mallory', { room: 'lobby' });
    rawClients.push(mallory);
    const corpus = [
      '<script>window.__pwned = "script"</script>',
      '<img src="http://127.0.0.2:9/x.png" onerror="window.__pwned = \'img\'">',
      '[click](javascript:window.__pwned="link")',
      '[quit](command:workbench.action.closeWindow)',
      '![pixel](http://127.0.0.2:9/pixel.png)',
      '<iframe src="http://127.0.0.2:9/"></iframe><svg onload="window.__pwned=\'svg\'">',
      'bidi: \u202Eexe.gnp\u202C ok',
    ];
    const before = strayRequests.length;
    corpus.forEach((text, index) => mallory.send({ type: 'say', id: `evil-${index}`, text }));
    for (const person of [alice, bob]) {
      await eventually(`${person.name} shows the corpus`, async () => (await panelText(person.page)).includes('bidi:'));
      const frame = await chatFrame(person.page);
      // Evaluated in the webview; a string, because this file is type-checked without the DOM library.
      const found = (await frame.evaluate(`(() => {
        const list = document.getElementById('messages');
        return {
          pwned: window.__pwned ?? null,
          active: list.querySelectorAll('script, img, iframe, svg, object, embed').length,
          badLinks: [...list.querySelectorAll('a')].filter((a) => !/^(https?:|#)/.test(a.getAttribute('href') ?? '')).length,
          handlers: [...list.querySelectorAll('*')].filter((el) => [...el.attributes].some((attr) => attr.name.startsWith('on'))).length,
          text: list.innerText,
        };
      })()`)) as { pwned: string | null; active: number; badLinks: number; handlers: number; text: string };
      assert.equal(found.pwned, null, 'no hostile script ran');
      assert.equal(found.active, 0, 'no active elements were created');
      assert.equal(found.badLinks, 0, 'only http(s) links exist');
      assert.equal(found.handlers, 0, 'no event-handler attributes');
      assert.ok(found.text.includes('<script>window.__pwned'), 'the script tag shows as text');
      assert.ok(found.text.includes('⟨U+202E⟩'), 'bidi overrides are shown, not applied');
    }
    await delay(1_000);
    assert.deepEqual(strayRequests.slice(before), [], 'no request left for a hostile URL');
    await saveScreenshot(alice.page, 'conversation-hostile-dark');
  });

  it('screenshots the conversation in a dark and a light theme', async () => {
    const dark = await saveScreenshot(alice.page, 'conversation-dark');
    const light = await saveScreenshot(bob.page, 'conversation-light');
    // The README's picture is the light one; `npm run screenshot:readme` copies it there on purpose, so a test run leaves the tree as it was.
    assert.ok(existsSync(dark) && existsSync(light));
  });

  it('bob leaves and alice sees him go', async () => {
    await runCommand(bob.page, 'Chat Room: Leave Room');
    await eventually('alice sees bob leave', async () => (await panelText(alice.page)).includes('bob left'));
    await eventually('alice sees one member fewer', async () => /members \(2\)/i.test(await panelText(alice.page)));
    await saveScreenshot(alice.page, 'conversation-after-leave-dark');
  });
});
