/**
 * One load-generator process. It holds a share of the benchmark's client
 * connections, sends on a schedule when told to, and measures each delivery's
 * latency where it arrives. Running clients in separate processes keeps the
 * load generator from competing with itself on one event loop, and parsing is
 * done on raw bytes (no JSON.parse, no string per line) so the receiving side
 * stays cheap at a quarter of a million deliveries a second.
 */
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { LatencyHistogram } from './latencyHistogram';
import { monotonicMicros, type ClientGroup, type ClientPlan, type CoordinatorCommand, type WireProtocol, type WorkerReply } from './workerMessages';

// performance.now() is cheaper than hrtime.bigint() and runs on the same monotonic clock; anchor it once.
const clockOffsetMicros = monotonicMicros() - performance.now() * 1000;
const nowMicros = (): number => clockOffsetMicros + performance.now() * 1000;

const NEWLINE = 0x0a;
const SPACE = 0x20;
const DOT = 0x2e;
const NDJSON_TEXT_MARKER = Buffer.from('"text":"B');
const IRC_TEXT_MARKER = Buffer.from(' :B');
const PRIVMSG = Buffer.from('PRIVMSG ');
const PING_LINE = Buffer.from('PING');
const NDJSON_PONG = '{"type":"pong"}\n';
/** Byte 9 of `{"type":"…` names the frame: m(essage), a(ck), w(elcome), e(rror), p(ing/pong), j(oined), l(eft). */
const NDJSON_TYPE_OFFSET = 9;

function reply(message: WorkerReply): void {
  process.send?.(message);
}

/** Measurements of the run under way; late deliveries from an earlier run are ignored. */
const measurement = {
  run: -1,
  sent: 0,
  received: 0,
  acks: 0,
  errors: 0,
  firstError: undefined as string | undefined,
  lastReceivedMicros: 0,
  histogram: new LatencyHistogram(),
};

function noteError(text: string): void {
  measurement.errors++;
  measurement.firstError ??= text.slice(0, 200);
}

/** Reads the decimal digits at `position` up to a dot; -1 if there are none. */
function readNumber(data: Buffer, position: number, end: number): { value: number; next: number } {
  let value = 0;
  let index = position;
  while (index < end && data[index] !== DOT) {
    const digit = data[index] - 48;
    if (digit < 0 || digit > 9) return { value: -1, next: index };
    value = value * 10 + digit;
    index++;
  }
  return { value: index === position ? -1 : value, next: index + 1 };
}

/** A message text carries `B<run>.<send time µs>.<padding>`: count it and record its latency. */
function recordDelivery(data: Buffer, textStart: number, lineEnd: number, arrivedMicros: number): void {
  const run = readNumber(data, textStart, lineEnd);
  if (run.value !== measurement.run) return;
  const sentMicros = readNumber(data, run.next, lineEnd);
  if (sentMicros.value < 0) return;
  measurement.received++;
  measurement.histogram.record(arrivedMicros - sentMicros.value);
  measurement.lastReceivedMicros = arrivedMicros;
}

function startsWith(data: Buffer, position: number, prefix: Buffer): boolean {
  if (position + prefix.length > data.length) return false;
  for (let index = 0; index < prefix.length; index++) if (data[position + index] !== prefix[index]) return false;
  return true;
}

class BenchClient {
  readonly socket: Socket;
  joined = false;
  nextSendMicros = 0;
  private messageCounter = 0;
  private leftover: Buffer | undefined;
  private settled = false;

  constructor(
    readonly plan: ClientPlan,
    private readonly protocol: WireProtocol,
    port: number,
    private readonly onSettled: (client: BenchClient, failure: string | undefined) => void,
    onConnected: () => void,
  ) {
    this.socket = connect({ host: '127.0.0.1', port, noDelay: true });
    this.socket.on('connect', () => {
      onConnected();
      if (protocol === 'ndjson') {
        this.socket.write(JSON.stringify({ type: 'hello', name: plan.name, room: plan.room, clientId: plan.name }) + '\n');
      } else {
        // JOIN waits for 001: a JOIN before registration completes would be refused.
        this.socket.write(`NICK ${plan.name}\r\nUSER ${plan.name} 0 * :${plan.name}\r\n`);
      }
    });
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', (error) => this.settle(error.message));
    this.socket.on('close', () => {
      this.joined = false;
      this.settle('connection closed before joining');
    });
  }

  private settle(failure: string | undefined): void {
    if (this.settled) return;
    this.settled = true;
    if (failure === undefined) this.joined = true;
    this.onSettled(this, failure);
  }

  send(run: number, padding: string): void {
    const text = `B${run}.${Math.round(nowMicros())}.${padding}`;
    if (this.protocol === 'ndjson') this.socket.write(`{"type":"say","id":"${++this.messageCounter}","text":"${text}"}\n`);
    else this.socket.write(`PRIVMSG #${this.plan.room} :${text}\r\n`);
  }

  private onData(chunk: Buffer): void {
    let data = chunk;
    if (this.leftover !== undefined) {
      data = Buffer.concat([this.leftover, chunk]);
      this.leftover = undefined;
    }
    // One clock read per chunk: every line in it arrived at the same moment.
    const arrivedMicros = nowMicros();
    let start = 0;
    for (;;) {
      const end = data.indexOf(NEWLINE, start);
      if (end === -1) break;
      if (this.protocol === 'ndjson') this.ndjsonLine(data, start, end, arrivedMicros);
      else this.ircLine(data, start, end, arrivedMicros);
      start = end + 1;
    }
    // Copied so a small remainder does not pin a large chunk.
    if (start < data.length) this.leftover = Buffer.from(data.subarray(start));
  }

  private ndjsonLine(data: Buffer, start: number, end: number, arrivedMicros: number): void {
    switch (data[start + NDJSON_TYPE_OFFSET]) {
      case 0x6d: {
        const marker = data.indexOf(NDJSON_TEXT_MARKER, start);
        if (marker !== -1 && marker < end) recordDelivery(data, marker + NDJSON_TEXT_MARKER.length, end, arrivedMicros);
        return;
      }
      case 0x61:
        measurement.acks++;
        return;
      case 0x77:
        this.settle(undefined);
        return;
      case 0x65: {
        const text = data.toString('utf8', start, end);
        noteError(text);
        if (!this.joined) this.settle(text);
        return;
      }
      case 0x70:
        if (data[start + NDJSON_TYPE_OFFSET + 1] === 0x69) this.socket.write(NDJSON_PONG);
        return;
    }
  }

  private ircLine(data: Buffer, start: number, end: number, arrivedMicros: number): void {
    if (startsWith(data, start, PING_LINE)) {
      this.socket.write('PONG' + data.toString('latin1', start + 4, end).replace(/\r$/, '') + '\r\n');
      return;
    }
    // ":prefix COMMAND params": the command follows the first space.
    const space = data.indexOf(SPACE, start);
    if (space === -1 || space >= end) return;
    const command = space + 1;
    if (startsWith(data, command, PRIVMSG)) {
      const marker = data.indexOf(IRC_TEXT_MARKER, command);
      if (marker !== -1 && marker < end) recordDelivery(data, marker + IRC_TEXT_MARKER.length, end, arrivedMicros);
      return;
    }
    const numeric = data.toString('latin1', command, command + 4);
    if (numeric === '001 ') this.socket.write(`JOIN #${this.plan.room}\r\n`);
    else if (numeric === '366 ') this.settle(undefined);
    else if (/^[45]\d\d /.test(numeric) && numeric !== '422 ') {
      const text = data.toString('latin1', start, end);
      noteError(text);
      if (!this.joined) this.settle(text);
    } else if (startsWith(data, start, Buffer.from('ERROR'))) {
      noteError(data.toString('latin1', start, end));
    }
  }

  close(): void {
    this.settled = true;
    this.socket.destroy();
  }
}

const groups = new Map<ClientGroup, BenchClient[]>();

function openGroup(command: Extract<CoordinatorCommand, { cmd: 'open' }>): void {
  const clients: BenchClient[] = groups.get(command.group) ?? [];
  groups.set(command.group, clients);
  const waiting = [...command.clients];
  let inFlight = 0;
  let connecting = 0;
  let joined = 0;
  let failed = 0;
  let firstError: string | undefined;
  let firstConnectMicros = 0;
  let lastJoinedMicros = 0;
  let finished = false;

  const finish = (): void => {
    if (finished) return;
    finished = true;
    clearTimeout(deadline);
    const unfinished = waiting.length + inFlight;
    if (unfinished > 0) firstError ??= `${unfinished} not joined within ${command.timeoutMs} ms`;
    reply({ event: 'opened', group: command.group, joined, failed: failed + unfinished, firstConnectMicros, lastJoinedMicros, firstError });
  };
  const deadline = setTimeout(finish, command.timeoutMs);
  const onConnected = (): void => {
    connecting--;
    startMore();
  };
  const onSettled = (client: BenchClient, failure: string | undefined): void => {
    inFlight--;
    if (client.socket.connecting) connecting--;
    if (failure === undefined) {
      joined++;
      lastJoinedMicros = monotonicMicros();
    } else {
      failed++;
      firstError ??= failure;
    }
    startMore();
  };
  const startMore = (): void => {
    if (finished) return;
    while (inFlight < command.maxInFlight && connecting < command.maxConnecting && waiting.length > 0) {
      inFlight++;
      connecting++;
      if (firstConnectMicros === 0) firstConnectMicros = monotonicMicros();
      clients.push(new BenchClient(waiting.shift() as ClientPlan, command.protocol, command.port, onSettled, onConnected));
    }
    if (inFlight === 0 && waiting.length === 0) finish();
  };
  startMore();
}

function runLoad(command: Extract<CoordinatorCommand, { cmd: 'load' }>): void {
  measurement.run = command.run;
  measurement.sent = 0;
  measurement.received = 0;
  measurement.acks = 0;
  measurement.errors = 0;
  measurement.firstError = undefined;
  measurement.lastReceivedMicros = 0;
  measurement.histogram.reset();

  const intervalMicros = command.sendIntervalMs * 1000;
  const endMicros = command.startMicros + command.durationMs * 1000;
  const senders = (groups.get('load') ?? []).filter((client) => client.joined);
  senders.forEach((client, index) => {
    const slot = command.workerIndex + index * command.workerCount;
    client.nextSendMicros = command.startMicros + Math.floor((slot / command.totalClients) * intervalMicros);
  });
  const padding = 'x'.repeat(command.textPadding);
  // A short tick: the send time is stamped when the message is written, so the tick only adds jitter to when, not to the latency measured.
  const ticker = setInterval(() => {
    const now = nowMicros();
    if (now >= endMicros) {
      clearInterval(ticker);
      reply({ event: 'sent', run: command.run, sent: measurement.sent });
      return;
    }
    for (const client of senders) {
      if (client.joined && now >= client.nextSendMicros) {
        client.send(command.run, padding);
        measurement.sent++;
        client.nextSendMicros += intervalMicros;
      }
    }
  }, 2);
}

process.on('message', (command: CoordinatorCommand) => {
  switch (command.cmd) {
    case 'open':
      return openGroup(command);
    case 'load':
      return runLoad(command);
    case 'counts':
      return reply({ event: 'counts', run: command.run, received: measurement.run === command.run ? measurement.received : 0 });
    case 'report':
      return reply({
        event: 'report',
        run: command.run,
        sent: measurement.sent,
        received: measurement.received,
        acks: measurement.acks,
        errors: measurement.errors,
        firstError: measurement.firstError,
        lastReceivedMicros: measurement.lastReceivedMicros,
        histogram: measurement.histogram.snapshot(),
      });
    case 'close': {
      for (const client of groups.get(command.group) ?? []) client.close();
      groups.delete(command.group);
      return reply({ event: 'closed', group: command.group });
    }
    case 'exit':
      for (const clients of groups.values()) for (const client of clients) client.close();
      process.exit(0);
  }
});
// If the coordinator dies, so does this worker: nothing is left holding sockets.
process.on('disconnect', () => process.exit(0));
