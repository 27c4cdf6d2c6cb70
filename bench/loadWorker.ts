/**
 * One load-generator process. It holds a share of the benchmark's client
 * connections, sends on a schedule when told to, and measures each delivery's
 * latency where it arrives. Running clients in separate processes keeps the
 * load generator from competing with itself on one event loop, and parsing is
 * done on raw bytes (no JSON.parse, no string per line) so the receiving side
 * stays cheap at a quarter of a million deliveries a second.
 *
 * Clients speak protocol 1 (one room a connection), protocol 2 (a hello with
 * a key, then a join per room) or IRC.
 */
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { LatencyHistogram } from './latencyHistogram';
import { monotonicMicros, type ClientGroup, type ClientPlan, type CoordinatorCommand, type SearchReport, type SearchTerm, type WireProtocol, type WorkerReply } from './workerMessages';

// performance.now() is cheaper than hrtime.bigint() and runs on the same monotonic clock; anchor it once.
const clockOffsetMicros = monotonicMicros() - performance.now() * 1000;
const nowMicros = (): number => clockOffsetMicros + performance.now() * 1000;

const NEWLINE = 0x0a;
const SPACE = 0x20;
const DOT = 0x2e;
const QUOTE = 0x22;
const NDJSON_TEXT_MARKER = Buffer.from('"text":"B');
const SEQ_MARKER = Buffer.from('"seq":');
const ROOM_MARKER = Buffer.from('"room":"');
const SEARCH_ID_MARKER = Buffer.from('"id":"q');
const IRC_TEXT_MARKER = Buffer.from(' :B');
const PRIVMSG = Buffer.from('PRIVMSG ');
const PING_LINE = Buffer.from('PING');
const NDJSON_PONG = '{"type":"pong"}\n';
/** Byte 9 of `{"type":"…` names the frame: m(essage), a(ck), w(elcome), e(rror), p(ing/pong), j(oined), l(eft), r(oomState…), s(earchResults). */
const NDJSON_TYPE_OFFSET = 9;
/** Longest a search answer is waited for after the searches stop. */
const SEARCH_DRAIN_MS = 5_000;

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

interface SearchTally {
  label: string;
  text: string;
  sent: number;
  answered: number;
  refused: number;
  firstRefusal?: string;
  histogram: LatencyHistogram;
}

/** Search latencies of the run under way, by term. */
let searchTallies: SearchTally[] = [];

function noteError(text: string): void {
  measurement.errors++;
  measurement.firstError ??= text.slice(0, 200);
}

/** Reads the decimal digits at `position` up to a non-digit; -1 if there are none. */
function readNumber(data: Buffer, position: number, end: number): { value: number; next: number } {
  let value = 0;
  let index = position;
  while (index < end && data[index] !== DOT) {
    const digit = data[index] - 48;
    if (digit < 0 || digit > 9) break;
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

function within(data: Buffer, marker: Buffer, start: number, end: number): number {
  const at = data.indexOf(marker, start);
  return at !== -1 && at < end ? at : -1;
}

class BenchClient {
  readonly socket: Socket;
  joined = false;
  nextSendMicros = 0;
  nextSearchMicros = 0;
  searchCount = 0;
  /** The search awaiting its answer: when it was sent and under which term. */
  searchOutstanding: { sentMicros: number; tally: SearchTally } | undefined;
  private messageCounter = 0;
  private leftover: Buffer | undefined;
  private settled = false;
  /** v2: join answers still awaited before the client counts as joined. */
  private joinsOwed = 0;

  constructor(
    readonly plan: ClientPlan,
    private readonly protocol: WireProtocol,
    port: number,
    localAddress: string | undefined,
    /** The latest seq seen in each room, when the group keeps track (it is carried over a resume). */
    readonly latestSeqs: Map<string, number> | undefined,
    private readonly onSettled: (client: BenchClient, failure: string | undefined) => void,
    onConnected: () => void,
  ) {
    this.socket = connect({ host: '127.0.0.1', port, noDelay: true, ...(localAddress === undefined ? {} : { localAddress }) });
    this.socket.on('connect', () => {
      onConnected();
      if (protocol === 'ndjson') {
        const room = plan.rooms[0];
        const lastSeq = latestSeqs?.get(room);
        this.socket.write(JSON.stringify({ type: 'hello', name: plan.name, room, clientId: plan.name, ...(lastSeq === undefined ? {} : { lastSeq }) }) + '\n');
      } else if (protocol === 'ndjson-v2') {
        this.socket.write(JSON.stringify({ type: 'hello', protocol: 2, name: plan.name, clientId: plan.name, ...(plan.key === undefined ? {} : { key: plan.key }) }) + '\n');
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
    else if (this.protocol === 'ndjson-v2') this.socket.write(`{"type":"say","id":"${++this.messageCounter}","room":"${this.plan.rooms[0]}","text":"${text}"}\n`);
    else this.socket.write(`PRIVMSG #${this.plan.rooms[0]} :${text}\r\n`);
  }

  search(room: string, tally: SearchTally): void {
    this.searchOutstanding = { sentMicros: nowMicros(), tally };
    tally.sent++;
    this.socket.write(JSON.stringify({ type: 'search', id: `q${++this.searchCount}`, room, text: tally.text }) + '\n');
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
      if (this.protocol === 'irc') this.ircLine(data, start, end, arrivedMicros);
      else this.ndjsonLine(data, start, end, arrivedMicros);
      start = end + 1;
    }
    // Copied so a small remainder does not pin a large chunk.
    if (start < data.length) this.leftover = Buffer.from(data.subarray(start));
  }

  private ndjsonLine(data: Buffer, start: number, end: number, arrivedMicros: number): void {
    const type = data[start + NDJSON_TYPE_OFFSET];
    if (this.latestSeqs !== undefined && type !== 0x61 && type !== 0x65 && type !== 0x70) this.noteSeq(data, start, end);
    switch (type) {
      case 0x6d: {
        const marker = within(data, NDJSON_TEXT_MARKER, start, end);
        if (marker !== -1) recordDelivery(data, marker + NDJSON_TEXT_MARKER.length, end, arrivedMicros);
        return;
      }
      case 0x61:
        if (this.joinsOwed > 0) {
          // Before it has joined, a v2 client's acks answer its joins.
          if (--this.joinsOwed === 0) this.settle(undefined);
        } else {
          measurement.acks++;
        }
        return;
      case 0x77:
        if (this.protocol === 'ndjson-v2') this.joinRooms();
        else this.settle(undefined);
        return;
      case 0x73:
        this.searchAnswered(arrivedMicros, undefined);
        return;
      case 0x65: {
        const text = data.toString('utf8', start, end);
        if (this.searchOutstanding && within(data, SEARCH_ID_MARKER, start, end) !== -1) {
          this.searchAnswered(arrivedMicros, text);
          return;
        }
        noteError(text);
        if (!this.joined) this.settle(text);
        return;
      }
      case 0x70:
        if (data[start + NDJSON_TYPE_OFFSET + 1] === 0x69) this.socket.write(NDJSON_PONG);
        return;
    }
  }

  /** After a v2 welcome: join each room (from the latest seq seen, after a restart); joined once every join is acked. */
  private joinRooms(): void {
    const rooms = this.plan.rooms;
    if (rooms.length === 0) return this.settle(undefined);
    this.joinsOwed = rooms.length;
    let frames = '';
    rooms.forEach((room, index) => {
      const lastSeq = this.latestSeqs?.get(room);
      frames += JSON.stringify({ type: 'join', id: `j${index}`, room, ...(lastSeq === undefined ? {} : { lastSeq }) }) + '\n';
    });
    this.socket.write(frames);
  }

  private searchAnswered(arrivedMicros: number, refusal: string | undefined): void {
    const outstanding = this.searchOutstanding;
    if (!outstanding) return;
    this.searchOutstanding = undefined;
    const { tally } = outstanding;
    if (refusal !== undefined) {
      tally.refused++;
      tally.firstRefusal ??= refusal.slice(0, 200);
      return;
    }
    tally.answered++;
    tally.histogram.record(arrivedMicros - outstanding.sentMicros);
  }

  /** Keeps the highest `seq` seen per `room` (the frames a storm client sees are few; the load's clients do not track). */
  private noteSeq(data: Buffer, start: number, end: number): void {
    const seqAt = within(data, SEQ_MARKER, start, end);
    const roomAt = within(data, ROOM_MARKER, start, end);
    if (seqAt === -1 || roomAt === -1) return;
    const seq = readNumber(data, seqAt + SEQ_MARKER.length, end).value;
    const roomStart = roomAt + ROOM_MARKER.length;
    const roomEnd = data.indexOf(QUOTE, roomStart);
    if (seq < 0 || roomEnd === -1 || roomEnd > end) return;
    const room = data.toString('utf8', roomStart, roomEnd);
    const latestSeqs = this.latestSeqs as Map<string, number>;
    if (seq > (latestSeqs.get(room) ?? 0)) latestSeqs.set(room, seq);
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
      const marker = within(data, IRC_TEXT_MARKER, command, end);
      if (marker !== -1) recordDelivery(data, marker + IRC_TEXT_MARKER.length, end, arrivedMicros);
      return;
    }
    const numeric = data.toString('latin1', command, command + 4);
    if (numeric === '001 ') this.socket.write(`JOIN #${this.plan.rooms[0]}\r\n`);
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

interface Group {
  protocol: WireProtocol;
  clients: BenchClient[];
}

const groups = new Map<ClientGroup, Group>();

/** What a client is opened with: its plan, and the seqs it saw before (a resume) or a fresh table (a group that keeps track). */
interface ClientStart {
  plan: ClientPlan;
  latestSeqs: Map<string, number> | undefined;
  /** Attempts made before this one (a resume tries again, as a real client does). */
  attempt?: number;
}

/** A resume tries a client again after a failure (a reset from a full accept queue, say) up to this many times, after a pause of up to RETRY_PAUSE_MS. */
const RESUME_ATTEMPTS = 5;
const RETRY_PAUSE_MS = 1_000;

interface OpenOptions {
  group: ClientGroup;
  protocol: WireProtocol;
  port: number;
  maxInFlight: number;
  maxConnecting: number;
  timeoutMs: number;
  localAddresses: string[];
  /** Try a client that failed again, after a random pause (what the extension's client does when a server is busy). */
  retry?: boolean;
}

/** Opens clients at most `maxInFlight` joining and `maxConnecting` in the TCP handshake at once; replies `opened` when every one has joined or failed. */
function openClients(starts: ClientStart[], options: OpenOptions): void {
  const group: Group = { protocol: options.protocol, clients: [] };
  groups.set(options.group, group);
  const waiting = [...starts];
  let inFlight = 0;
  let connecting = 0;
  let opened = 0;
  let joined = 0;
  let failed = 0;
  let retries = 0;
  let pausedForRetry = 0;
  let firstError: string | undefined;
  let firstConnectMicros = 0;
  let lastJoinedMicros = 0;
  let finished = false;

  const finish = (): void => {
    if (finished) return;
    finished = true;
    clearTimeout(deadline);
    const unfinished = waiting.length + inFlight + pausedForRetry;
    if (unfinished > 0) firstError ??= `${unfinished} not joined within ${options.timeoutMs} ms`;
    reply({ event: 'opened', group: options.group, joined, failed: failed + unfinished, retries, firstConnectMicros, lastJoinedMicros, firstError });
  };
  const deadline = setTimeout(finish, options.timeoutMs);
  const attempts = new Map<BenchClient, number>();
  const onConnected = (): void => {
    connecting--;
    startMore();
  };
  const onSettled = (client: BenchClient, failure: string | undefined): void => {
    inFlight--;
    if (client.socket.connecting) connecting--;
    const attempt = attempts.get(client) ?? 0;
    if (failure === undefined) {
      joined++;
      lastJoinedMicros = monotonicMicros();
    } else if (options.retry && attempt + 1 < RESUME_ATTEMPTS && !finished) {
      retries++;
      pausedForRetry++;
      group.clients.splice(group.clients.indexOf(client), 1);
      setTimeout(() => {
        pausedForRetry--;
        waiting.push({ plan: client.plan, latestSeqs: client.latestSeqs, attempt: attempt + 1 });
        startMore();
      }, Math.random() * RETRY_PAUSE_MS);
    } else {
      failed++;
      firstError ??= failure;
    }
    startMore();
  };
  const startMore = (): void => {
    if (finished) return;
    while (inFlight < options.maxInFlight && connecting < options.maxConnecting && waiting.length > 0) {
      inFlight++;
      connecting++;
      if (firstConnectMicros === 0) firstConnectMicros = monotonicMicros();
      const { plan, latestSeqs, attempt } = waiting.shift() as ClientStart;
      const addresses = options.localAddresses;
      const localAddress = addresses.length === 0 ? undefined : addresses[opened % addresses.length];
      opened++;
      const client = new BenchClient(plan, options.protocol, options.port, localAddress, latestSeqs, onSettled, onConnected);
      if (attempt !== undefined) attempts.set(client, attempt);
      group.clients.push(client);
    }
    if (inFlight === 0 && waiting.length === 0 && pausedForRetry === 0) finish();
  };
  startMore();
}

function closeGroup(name: ClientGroup): void {
  for (const client of groups.get(name)?.clients ?? []) client.close();
  groups.delete(name);
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
  const senders = (groups.get('load')?.clients ?? []).filter((client) => client.joined);
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
        // A generator that fell behind (the machine was busy) skips the sends it missed rather than making up for them in a burst the rate limit would hold back.
        if (client.nextSendMicros < now) client.nextSendMicros = now + intervalMicros;
      }
    }
  }, 2);
}

/**
 * Each searcher sends a search every interval, taking the terms in turn; a
 * search still unanswered when the next is due holds the next one back. After
 * the end, answers are awaited for up to SEARCH_DRAIN_MS.
 */
function runSearches(command: Extract<CoordinatorCommand, { cmd: 'search' }>): void {
  searchTallies = command.terms.map((term: SearchTerm) => ({ label: term.label, text: term.text, sent: 0, answered: 0, refused: 0, histogram: new LatencyHistogram() }));
  const intervalMicros = command.intervalMs * 1000;
  const endMicros = command.startMicros + command.durationMs * 1000;
  const searchers = (groups.get('search')?.clients ?? []).filter((client) => client.joined);
  searchers.forEach((client, index) => {
    const slot = command.workerIndex + index * command.workerCount;
    client.nextSearchMicros = command.startMicros + Math.floor((slot / Math.max(1, command.totalSearchers)) * intervalMicros);
    client.searchOutstanding = undefined;
  });
  let sentBySearcher = 0;
  const finish = (): void => {
    const searches: SearchReport[] = searchTallies.map((tally) => ({ label: tally.label, sent: tally.sent, answered: tally.answered, refused: tally.refused, firstRefusal: tally.firstRefusal, histogram: tally.histogram.snapshot() }));
    reply({ event: 'searched', run: command.run, searches });
  };
  const ticker = setInterval(() => {
    const now = nowMicros();
    if (now >= endMicros) {
      clearInterval(ticker);
      const drainUntil = Date.now() + SEARCH_DRAIN_MS;
      const drain = setInterval(() => {
        if (searchers.every((client) => client.searchOutstanding === undefined) || Date.now() >= drainUntil) {
          clearInterval(drain);
          finish();
        }
      }, 20);
      return;
    }
    for (const client of searchers) {
      if (client.joined && client.searchOutstanding === undefined && now >= client.nextSearchMicros) {
        client.search(command.room, searchTallies[sentBySearcher++ % searchTallies.length]);
        client.nextSearchMicros += intervalMicros;
      }
    }
  }, 2);
}

process.on('message', (command: CoordinatorCommand) => {
  switch (command.cmd) {
    case 'open': {
      closeGroup(command.group);
      const starts = command.clients.map((plan) => ({ plan, latestSeqs: command.trackSeqs ? new Map<string, number>() : undefined }));
      return openClients(starts, command);
    }
    case 'resume': {
      const previous = groups.get(command.group);
      const starts = (previous?.clients ?? []).map((client) => ({ plan: client.plan, latestSeqs: client.latestSeqs }));
      closeGroup(command.group);
      return openClients(starts, { ...command, protocol: previous?.protocol ?? 'ndjson-v2', retry: true });
    }
    case 'load':
      return runLoad(command);
    case 'search':
      return runSearches(command);
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
    case 'close':
      closeGroup(command.group);
      return reply({ event: 'closed', group: command.group });
    case 'exit':
      for (const name of [...groups.keys()]) closeGroup(name);
      process.exit(0);
  }
});
// If the coordinator dies, so does this worker: nothing is left holding sockets.
process.on('disconnect', () => process.exit(0));
