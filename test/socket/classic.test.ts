/** The seed's plain-text protocol (its own client and `nc`) in the same room as NDJSON clients. */
import assert from 'node:assert/strict';
import type { JoinedEvent, LeftEvent, MessageEvent } from '../../shared/protocol';
import { ServerProcess } from '../support/serverProcess';
import { TestClient } from '../support/testClient';

const GREETING = 'Greetings from the cave! Now type your name and press enter!';

describe('classic mode over TCP', function () {
  let server: ServerProcess;
  const clients: TestClient[] = [];
  async function classic(): Promise<TestClient> {
    const client = await TestClient.connect(server.classicPort as number);
    clients.push(client);
    assert.equal(await client.nextLine(), GREETING);
    return client;
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

  it('greets, takes the first message as the name, welcomes, and tells NDJSON members', async () => {
    const modern = await TestClient.join(server.port, 'modern');
    clients.push(modern);
    const seed = await classic();
    // The seed client sends its name as one bare send() with no newline.
    seed.write('Cave Dweller');
    assert.equal(await seed.nextLine(), 'Welcome Cave Dweller! If you ever want to quit, type {quit} to exit.');
    const joined = await modern.nextFrame<JoinedEvent>((f) => f.type === 'joined' && f.name === 'Cave Dweller');
    assert.equal(joined.room, 'lobby');
  });

  it('lets classic and NDJSON users chat: each sees the other in their own format, one line per message', async () => {
    const modern = await TestClient.join(server.port, 'ndjson-user');
    clients.push(modern);
    const terminal = await classic();
    terminal.write('nc-user\r\n');
    await terminal.nextLine((line) => line.startsWith('Welcome nc-user!'));
    assert.equal(await modern.nextFrame<JoinedEvent>((f) => f.type === 'joined' && f.name === 'nc-user').then((f) => f.name), 'nc-user');

    terminal.write('hello from a terminal\n');
    const fromTerminal = await modern.nextFrame<MessageEvent>((f) => f.type === 'message' && f.from === 'nc-user');
    assert.equal(fromTerminal.text, 'hello from a terminal');
    assert.equal(await terminal.nextLine((line) => line.startsWith('nc-user:')), 'nc-user: hello from a terminal', 'the sender sees its own message, as in the seed');

    modern.send({ type: 'say', id: 'm1', text: 'hi back\nwith a second line' });
    assert.equal(await terminal.nextLine((line) => line.startsWith('ndjson-user:')), 'ndjson-user: hi back ↵ with a second line');
  });

  it('takes a chunk without a newline as one message once the client pauses', async () => {
    const modern = await TestClient.join(server.port, 'listener');
    clients.push(modern);
    const seed = await classic();
    seed.write('seed-client');
    await seed.nextLine((line) => line.startsWith('Welcome'));
    seed.write('first message');
    await new Promise((resolve) => setTimeout(resolve, 300));
    seed.write('second message');
    const first = await modern.nextFrame<MessageEvent>((f) => f.type === 'message' && f.from === 'seed-client');
    const second = await modern.nextFrame<MessageEvent>((f) => f.type === 'message' && f.from === 'seed-client');
    assert.deepEqual([first.text, second.text], ['first message', 'second message']);
  });

  it('echoes {quit}, closes, and the room hears the departure', async () => {
    const modern = await TestClient.join(server.port, 'witness');
    clients.push(modern);
    const watcher = await classic();
    watcher.write('watcher\n');
    await watcher.nextLine((line) => line.startsWith('Welcome'));
    const leaver = await classic();
    leaver.write('leaver\n');
    await leaver.nextLine((line) => line.startsWith('Welcome'));
    assert.equal(await watcher.nextLine((line) => line.includes('leaver')), 'leaver has joined the chat!');
    leaver.write('{quit}');
    assert.equal(await leaver.nextLine((line) => line === '{quit}'), '{quit}');
    await leaver.waitForClose();
    assert.equal(await watcher.nextLine((line) => line.includes('leaver')), 'leaver has left the chat.');
    const left = await modern.nextFrame<LeftEvent>((f) => f.type === 'left' && f.name === 'leaver');
    assert.equal(left.reason, 'quit');
  });

  it('asks again for a name that is taken or not allowed', async () => {
    const holder = await TestClient.join(server.port, 'taken-name');
    clients.push(holder);
    const seed = await classic();
    seed.write('TAKEN-NAME\n');
    assert.match(await seed.nextLine(), /already called TAKEN-NAME\. Type another name/);
    seed.write('server\n');
    assert.match(await seed.nextLine(), /reserved/);
    seed.write('free-name\n');
    assert.match(await seed.nextLine(), /^Welcome free-name!/);
  });

  it('refuses a message over the text limit and invalid UTF-8, and keeps the user connected', async () => {
    const seed = await classic();
    seed.write('limits\n');
    await seed.nextLine((line) => line.startsWith('Welcome'));
    // Other tests' members come and go in the same lobby, so look for the answer, not the next line.
    const answer = (line: string): boolean => !/ has (joined|left) the chat/.test(line);
    seed.write('x'.repeat(4097) + '\n');
    assert.match(await seed.nextLine(answer), /the limit is 4096/);
    seed.write(Buffer.from([0xff, 0xfe, 0x0a]));
    assert.match(await seed.nextLine(answer), /not valid UTF-8/);
    seed.write('x'.repeat(4096) + '\n');
    assert.equal(await seed.nextLine((line) => line.startsWith('limits:')), 'limits: ' + 'x'.repeat(4096));
  });

  it('shows every C0 and C1 control character of another member\'s text as a visible stand-in, and keeps ↵ for line breaks', async () => {
    const modern = await TestClient.join(server.port, 'painter');
    clients.push(modern);
    const terminal = await classic();
    terminal.write('viewer\n');
    await terminal.nextLine((line) => line.startsWith('Welcome viewer'));
    // Carriage return, escape sequences, vertical tab, bell, backspace, NUL, DEL and C1 (CSI, NEL): none may reach the terminal.
    const hostile = 'send me your token\r\u001b[2K\u001b[1Abob: hi\u000b\u0007\u0008\u0000\u007f\u009b31m\u0085\nline two\r\nthree\u2028four';
    modern.send({ type: 'say', id: 'paint', text: hostile });
    const shown = await terminal.nextLine((line) => line.startsWith('painter:'));
    assert.doesNotMatch(shown, /\p{Cc}/u, `a control character reached the terminal: ${JSON.stringify(shown)}`);
    assert.equal(shown, 'painter: send me your token␍␛[2K␛[1Abob: hi␋␇␈␀␡\\x9b31m\\x85 ↵ line two ↵ three ↵ four');
  });

  describe('time limits (no ping in the seed protocol)', () => {
    let limited: ServerProcess | undefined;
    async function startLimited(args: string[]): Promise<ServerProcess> {
      limited = await ServerProcess.start({ memory: true, classic: true, args });
      return limited;
    }
    afterEach(async () => {
      await limited?.dispose();
    });

    it('closes a connection that gives no name within the hello time limit', async () => {
      const limited = await startLimited(['--hello-timeout-ms', '600']);
      const silent = await TestClient.connect(limited.classicPort as number);
      clients.push(silent);
      assert.equal(await silent.nextLine(), GREETING);
      assert.match(await silent.nextLine(undefined, 3000), /No name within/);
      await silent.waitForClose(3000);
    });

    it('closes a member silent for --classic-idle-ms and tells the room it left, but keeps one that talks', async () => {
      const limited = await startLimited(['--classic-idle-ms', '900']);
      const watcher = await TestClient.join(limited.port, 'watcher');
      clients.push(watcher);
      watcher.socket.on('data', (chunk: Buffer) => {
        if (chunk.toString().includes('"type":"ping"')) watcher.send({ type: 'pong' });
      });
      const talker = await TestClient.connect(limited.classicPort as number);
      const sleeper = await TestClient.connect(limited.classicPort as number);
      clients.push(talker, sleeper);
      talker.write('talker\n');
      sleeper.write('sleeper\n');
      await sleeper.nextLine((line) => line.startsWith('Welcome sleeper'));
      const keepTalking = setInterval(() => talker.write('still here\n'), 300);
      try {
        assert.match(await sleeper.nextLine((line) => /silent/.test(line), 4000), /You have been silent for/);
        await sleeper.waitForClose(3000);
        const left = await watcher.nextFrame<LeftEvent>((frame) => frame.type === 'left' && frame.name === 'sleeper', 3000);
        assert.equal(left.reason, 'lost');
        assert.equal(talker.closed, false, 'a member who talks is not idle');
      } finally {
        clearInterval(keepTalking);
      }
    });
  });
});
