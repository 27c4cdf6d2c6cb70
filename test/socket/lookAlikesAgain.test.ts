/**
 * Look-alikes and hidden text that the hardening of issue 8 still let
 * through, over real TCP against the built server:
 *
 * - two names told apart only by what nobody sees: a zero-width joiner
 *   between two emoji that form no sequence (drawn as the same two emoji), or
 *   a run of spaces (the panel collapses runs of white space, so `a  b` is
 *   drawn as `a b`); and two names that are one name in another case, which
 *   lower-casing misses where case folding does not (Greek final sigma);
 * - a name that holds another member's name and a colon, which a terminal user
 *   reads as that member speaking, since a classic line is `<name>: <text>`;
 * - bidi controls in a message (right-to-left override, isolates, marks),
 *   which reach a classic user's terminal as they are and reorder what a
 *   bidi-aware terminal shows, although every other control is made visible.
 */
import assert from 'node:assert/strict';
import type { ErrorFrame } from '../../shared/protocol';
import { ServerProcess } from '../support/serverProcess';
import { TestClient } from '../support/testClient';

/** Every bidi formatting character: marks, embeddings, overrides, isolates and the Arabic letter mark. */
const BIDI_CONTROL = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/u;

describe('look-alikes and hidden text, again', function () {
  this.timeout(30_000);
  let server: ServerProcess;
  const clients: TestClient[] = [];
  async function track(client: Promise<TestClient>): Promise<TestClient> {
    const ready = await client;
    clients.push(ready);
    return ready;
  }
  /** A hello's first answer: a welcome or an error. */
  async function firstAnswer(name: string, room: string): Promise<string> {
    const client = await track(TestClient.connect(server.port));
    client.send({ type: 'hello', name, room });
    const reply = await client.nextFrame<ErrorFrame>((frame) => frame.type === 'error' || frame.type === 'welcome');
    return reply.type === 'error' ? reply.code : 'welcome';
  }

  before(async () => {
    server = await ServerProcess.start({ memory: true, classic: true });
  });
  afterEach(() => {
    for (const client of clients.splice(0)) client.close();
  });
  after(async () => {
    await server.dispose();
  });

  it('takes names told apart only by a zero-width joiner between emoji, by a run of spaces, or by case (a Greek final sigma) as one seat', async () => {
    await track(TestClient.join(server.port, 'ana 👍👍', { room: 'unseen' }));
    await track(TestClient.join(server.port, 'bo b', { room: 'unseen' }));
    await track(TestClient.join(server.port, 'ΟΔΥΣ', { room: 'unseen' }));
    const lookAlikes: [string, string][] = [
      ['ana 👍\u200D👍', 'a ZWJ between two emoji that form no sequence'],
      ['bo  b', 'two spaces where the panel draws one'],
      ['οδυσ', 'the same name in lower case: lower-casing ΟΔΥΣ gives a final ς, case folding gives σ'],
    ];
    const seated: string[] = [];
    for (const [name, why] of lookAlikes) {
      if ((await firstAnswer(name, 'unseen')) === 'welcome') seated.push(`${JSON.stringify(name)} (${why})`);
    }
    assert.deepEqual(seated, [], 'look-alikes of present names were given seats of their own');
  });

  it("does not seat a name that a terminal user reads as another member's name and a colon", async () => {
    const alice = await track(TestClient.join(server.port, 'alice'));
    const terminal = await track(TestClient.connect(server.classicPort as number));
    await terminal.nextLine();
    terminal.write('viewer\n');
    await terminal.nextLine((line) => line.startsWith('Welcome viewer'));
    const impostorName = 'alice: the new token is';
    const impostor = await track(TestClient.connect(server.port));
    impostor.send({ type: 'hello', name: impostorName });
    const reply = await impostor.nextFrame((frame) => frame.type === 'error' || frame.type === 'welcome');
    if (reply.type === 'welcome') {
      impostor.send({ type: 'say', id: 'spoof', text: 'hunter2' });
      const shown = await terminal.nextLine((line) => line.endsWith('hunter2'));
      assert.ok(!shown.startsWith('alice: '), `a terminal user saw ${JSON.stringify(shown)} while alice is in the room`);
    }
    assert.equal(alice.closed, false);
  });

  it("shows bidi controls in another member's text visibly to classic users, as it shows every other control", async () => {
    const painter = await track(TestClient.join(server.port, 'painter'));
    const terminal = await track(TestClient.connect(server.classicPort as number));
    await terminal.nextLine();
    terminal.write('reader\n');
    await terminal.nextLine((line) => line.startsWith('Welcome reader'));
    // "…pay to 1234" shown reversed by the override; isolates and marks move text the same way.
    const hostile = 'pay to \u202E4321\u202C now \u2067x\u2069 \u200Fy\u200E \u061Cz';
    painter.send({ type: 'say', id: 'bidi', text: hostile });
    const shown = await terminal.nextLine((line) => line.startsWith('painter:'));
    assert.doesNotMatch(shown, BIDI_CONTROL, `a bidi control reached the terminal: ${JSON.stringify(shown)}`);
    for (const visible of ['pay to', '4321', 'now', 'x', 'y', 'z']) assert.ok(shown.includes(visible), `${JSON.stringify(visible)} is missing from ${JSON.stringify(shown)}`);
  });
});
