/**
 * A drop that the client notices and the server does not: a laptop changes
 * networks, its socket is reset on its side, and the server's end of the old
 * connection stays open until its idle ping goes unanswered (60 s, then 30 s
 * more, at the defaults). The server hands every welcome a seat secret
 * (`welcome.resume`) for exactly this case: a hello that gives it back takes
 * the seat over at once. The extension's client must give it back, or it is
 * refused with name_taken, again and again, until the server lets go of the
 * old connection, and what its person typed meanwhile waits in the outbox.
 *
 * Found by the outside review after issue 8: the client never sends `resume`,
 * so after such a drop it was kept out of its own seat for up to 90 s.
 */
import { strict as assert } from 'node:assert';
import { ResumingClient } from '../support/resumingClient';
import { ServerProcess } from '../support/serverProcess';
import { TcpProxy } from '../support/tcpProxy';

const ROOM = 'resume-room';
/** Far below the server's idle limits (60 s + 30 s), far above the client's backoff here. */
const BACK_WITHIN_MS = 10_000;

describe("faults: a drop the server has not noticed yet (the extension's client resumes its seat)", function () {
  this.timeout(40_000);
  let server: ServerProcess;
  let proxy: TcpProxy;
  const clients: ResumingClient[] = [];

  beforeEach(async () => {
    // The default idle limits: the server notices a silent peer after 60 s and lets it go 30 s later.
    server = await ServerProcess.start({ memory: true });
    proxy = await TcpProxy.start(() => server.port);
  });
  afterEach(async () => {
    for (const client of clients.splice(0)) client.stop();
    await proxy.close();
    await server.dispose();
  });

  it(`takes its seat back within ${BACK_WITHIN_MS / 1000} s after its side of the connection is reset while the server's side stays open`, async () => {
    const dana = new ResumingClient({ port: proxy.port, name: 'dana', room: ROOM, clientId: 'dana-installation', initialBackoffMs: 200, maxBackoffMs: 1000 });
    clients.push(dana);
    dana.start();
    await dana.waitUntil(() => dana.isWelcomed, 5000, 'its first welcome');
    assert.equal(proxy.connections.size, 1);

    // The client's side is reset; the server's side goes quiet but stays open, as after a change of network.
    const [pair] = proxy.connections;
    proxy.stall(pair);
    pair.client.removeAllListeners('close');
    pair.client.removeAllListeners('end');
    pair.client.resetAndDestroy();
    proxy.connections.delete(pair);
    await dana.waitUntil(() => !dana.isWelcomed, 5000, 'noticing the reset');

    const id = dana.say('typed while the network changed');
    const droppedAt = Date.now();
    let backAfterMs: number | undefined;
    try {
      await dana.waitUntil(() => dana.isWelcomed && dana.outbox.length === 0, BACK_WITHIN_MS, 'its seat back and its message acked');
      backAfterMs = Date.now() - droppedAt;
    } catch {
      // Reported below with what the server answered meanwhile.
    }
    const refusals = dana.errors.filter((error) => error.code === 'name_taken').length;
    assert.ok(
      backAfterMs !== undefined,
      `not back in its seat within ${BACK_WITHIN_MS} ms: ${refusals} hellos were refused with name_taken (the hello gave no seat secret), ` +
        `and "${id}" is still in the outbox`,
    );
    assert.ok(dana.sent.find((message) => message.id === id)?.ackedSeq !== undefined);
  });
});
