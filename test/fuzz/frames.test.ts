/**
 * Property-based fuzzing of the frame parser and the client-frame validator
 * (shared/framing.ts) with fast-check, for a bounded time per property.
 *
 * - FUZZ_TIME_MS: time per property (default 2000 ms; the full run uses 60000).
 * - FUZZ_SEED: replay one run exactly (the seed is printed with every run).
 *
 * A failing input is saved to test/fuzz/regressions.json (commit it) and from
 * then on replayed before the random runs, so a bug once found stays tested.
 */
import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import {
  ClientFrameDecoder,
  encodeFrame,
  LineSplitter,
  parseClientObjectV2,
  parseFlatJsonObject,
  parseServerFrame,
  parseServerFrameV2,
  validateClientFrame,
  validateClientFrameV2,
  type ClientFrameResult,
} from '../../shared/framing';
import type { ClientFrame, ErrorCode } from '../../shared/protocol';
import { readRegressions, saveRegression } from './regressions';

const TIME_MS = Number(process.env.FUZZ_TIME_MS ?? 2000);
const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : Date.now() ^ (Math.random() * 0x7fffffff);
const MAX_FRAME = 512;

/** Byte chunks travel through JSON as hex. */
type Chunks = Uint8Array[];
const toHex = (chunks: Chunks): string[] => chunks.map((chunk) => Buffer.from(chunk).toString('hex'));
const fromHex = (hex: string[]): Chunks => hex.map((text) => new Uint8Array(Buffer.from(text, 'hex')));

const KNOWN_PROBLEMS = new Set<ErrorCode>(['bad_frame', 'too_long']);

function decodeAll(chunks: Chunks, maxFrame = MAX_FRAME): ClientFrameResult[] {
  const decoder = new ClientFrameDecoder(maxFrame);
  return chunks.flatMap((chunk) => decoder.push(Buffer.from(chunk))).map(withoutByteCount);
}

/**
 * The too_long message says how many bytes had arrived when the limit was
 * passed, which depends on how TCP cut them; only that count may differ.
 */
function withoutByteCount(result: ClientFrameResult): ClientFrameResult {
  if (result.kind !== 'problem' || result.problem.code !== 'too_long') return result;
  return { kind: 'problem', problem: { ...result.problem, message: result.problem.message.replace(/; \d+ arrived/, '; N arrived') } };
}

/** Cuts one byte string into pieces at the given offsets. */
function cut(bytes: Uint8Array, offsets: number[]): Chunks {
  const points = [...new Set(offsets.map((offset) => offset % (bytes.length + 1)))].sort((a, b) => a - b);
  const pieces: Chunks = [];
  let start = 0;
  for (const point of points) {
    pieces.push(bytes.subarray(start, point));
    start = point;
  }
  pieces.push(bytes.subarray(start));
  return pieces;
}

// ------------------------------------------------------------ arbitraries

/** Text with everything that makes framing hard: astral characters, combining marks, quotes, CR, LF, NUL. */
const nastyText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme-composite', maxLength: 20 }),
  fc.constantFrom('', ' ', 'é', 'e\u0301', '😀', '👩‍👩‍👧', '\r', '\n', '\r\n', '"', '\\', '\u0000', '\u2028', '__proto__', 'x'.repeat(300)),
);

const clientFrame: fc.Arbitrary<ClientFrame> = fc.oneof(
  fc.record(
    { type: fc.constant('hello' as const), name: nastyText, room: nastyText, clientId: nastyText, token: nastyText, lastSeq: fc.nat() },
    { requiredKeys: ['type', 'name'] },
  ),
  fc.record({ type: fc.constant('say' as const), id: nastyText, text: nastyText }),
  fc.constantFrom<ClientFrame>({ type: 'ping' }, { type: 'pong' }, { type: 'bye' }),
);

/** A line that is not a valid frame in some way, or is one. */
const hostileLine = fc.oneof(
  clientFrame.map((frame) => JSON.stringify(frame)),
  fc.json(),
  fc.string({ unit: 'binary', maxLength: 60 }),
  fc.constantFrom(
    '{"type":"say","id":"a","text":"b","__proto__":{"x":1}}',
    '{"type":"hello","name":{"nested":true}}',
    '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]',
    '{"type":"hello","name":"a","lastSeq":1e400}',
    '{"type":"hello","name":"a","lastSeq":1.5}',
    '{"type":"constructor"}',
    '{"type":"toString"}',
    'GET / HTTP/1.1',
    'null',
    '"just a string"',
  ),
);

const byteStream = fc.oneof(
  fc.array(hostileLine, { maxLength: 8 }).map((lines) => new Uint8Array(Buffer.from(lines.map((line) => line + '\n').join(''), 'utf8'))),
  fc.uint8Array({ maxLength: 2 * MAX_FRAME }),
  // Valid UTF-8 lines with a stray invalid byte sequence spliced in.
  fc.tuple(fc.array(hostileLine, { maxLength: 4 }), fc.uint8Array({ minLength: 1, maxLength: 4 }), fc.nat()).map(([lines, junk, at]) => {
    const text = Buffer.from(lines.map((line) => line + '\n').join(''), 'utf8');
    const position = at % (text.length + 1);
    return new Uint8Array(Buffer.concat([text.subarray(0, position), Buffer.from(junk), text.subarray(position)]));
  }),
);

// ------------------------------------------------------------ properties

interface Property<T> {
  name: string;
  arbitrary: fc.Arbitrary<T>;
  check: (input: T) => void;
  toJson: (input: T) => unknown;
  fromJson: (json: unknown) => T;
}

const properties: Property<never>[] = [];
function property<T>(definition: Property<T>): void {
  properties.push(definition as unknown as Property<never>);
}

property<{ bytes: Uint8Array; offsets: number[] }>({
  name: 'the decoder gives the same results however the bytes are cut',
  arbitrary: fc.record({ bytes: byteStream, offsets: fc.array(fc.nat(), { maxLength: 12 }) }),
  check: ({ bytes, offsets }) => {
    const whole = decodeAll([bytes]);
    assert.deepEqual(decodeAll(cut(bytes, offsets)), whole);
    assert.deepEqual(decodeAll([...bytes].map((byte) => new Uint8Array([byte]))), whole, 'one byte at a time');
  },
  toJson: ({ bytes, offsets }) => ({ bytes: toHex([bytes])[0], offsets }),
  fromJson: (json) => {
    const { bytes, offsets } = json as { bytes: string; offsets: number[] };
    return { bytes: fromHex([bytes])[0], offsets };
  },
});

property<Chunks>({
  name: 'any bytes give frames or known problems, never an exception or an oversized line',
  arbitrary: fc.array(fc.oneof(byteStream, fc.uint8Array({ maxLength: 64 })), { maxLength: 6 }),
  check: (chunks) => {
    for (const result of decodeAll(chunks)) {
      if (result.kind === 'problem') assert.ok(KNOWN_PROBLEMS.has(result.problem.code), `unexpected code ${result.problem.code}`);
      else assert.ok(['hello', 'say', 'ping', 'pong', 'bye'].includes(result.frame.type));
    }
    const splitter = new LineSplitter(MAX_FRAME);
    for (const chunk of chunks) {
      for (const line of splitter.push(Buffer.from(chunk))) if (line.kind === 'line') assert.ok(line.bytes.length <= MAX_FRAME);
    }
  },
  toJson: toHex,
  fromJson: (json) => fromHex(json as string[]),
});

property<{ frames: ClientFrame[]; offsets: number[] }>({
  name: 'encoded client frames decode to themselves, split anywhere (multi-byte characters cut in half)',
  arbitrary: fc.record({ frames: fc.array(clientFrame, { minLength: 1, maxLength: 5 }), offsets: fc.array(fc.nat(), { maxLength: 10 }) }),
  check: ({ frames, offsets }) => {
    const bytes = new Uint8Array(Buffer.concat(frames.map((frame) => encodeFrame(frame))));
    const results = decodeAll(cut(bytes, offsets), 1 << 20);
    assert.equal(results.length, frames.length);
    results.forEach((result, index) => {
      assert.equal(result.kind, 'frame', JSON.stringify(result));
      // fast-check builds records without a prototype; JSON gives the plain object the wire carries.
      if (result.kind === 'frame') assert.deepEqual(result.frame, JSON.parse(JSON.stringify(frames[index])));
    });
  },
  toJson: (input) => input,
  fromJson: (json) => json as { frames: ClientFrame[]; offsets: number[] },
});

property<unknown>({
  name: 'parseFlatJsonObject takes only flat objects without prototype keys, and never throws',
  arbitrary: fc.oneof(fc.jsonValue(), fc.dictionary(fc.constantFrom('type', 'name', '__proto__', 'constructor', 'prototype', 'id', 'text'), fc.jsonValue())),
  check: (value) => {
    const text = JSON.stringify(value) ?? 'null';
    // JSON.stringify drops a __proto__ own key made by fc.dictionary, so it is spliced in by hand too.
    for (const line of [text, text.replace(/^\{/, '{"__proto__":1,')]) {
      const parsed = parseFlatJsonObject(Buffer.from(line, 'utf8'));
      if (!parsed.ok) {
        assert.equal(parsed.problem.code, 'bad_frame');
        continue;
      }
      assert.equal(Object.getPrototypeOf(parsed.frame), Object.prototype);
      for (const [key, field] of Object.entries(parsed.frame)) {
        assert.ok(!['__proto__', 'constructor', 'prototype'].includes(key), `key ${key} let through`);
        assert.ok(field === null || typeof field !== 'object', `nested ${key} let through`);
      }
    }
  },
  toJson: (value) => value,
  fromJson: (json) => json,
});

property<Record<string, unknown>>({
  name: 'validateClientFrame accepts only frames whose fields have the right types',
  arbitrary: fc.dictionary(
    fc.constantFrom('type', 'name', 'room', 'clientId', 'token', 'lastSeq', 'id', 'text', 'extra'),
    fc.oneof(fc.constantFrom('hello', 'say', 'ping', 'pong', 'bye', 'welcome', 'hasOwnProperty'), fc.string(), fc.double(), fc.integer(), fc.boolean(), fc.constant(null)),
  ),
  check: (raw) => {
    const result = validateClientFrame(raw);
    if (!result.ok) {
      assert.equal(result.problem.code, 'bad_frame');
      return;
    }
    const frame = result.frame as unknown as Record<string, unknown>;
    const strings: Record<string, string[]> = { hello: ['name'], say: ['id', 'text'] };
    for (const field of strings[frame.type as string] ?? []) assert.equal(typeof frame[field], 'string', `${field} must be a string`);
    for (const field of ['room', 'clientId', 'token']) if (frame.type === 'hello' && frame[field] !== undefined) assert.equal(typeof frame[field], 'string');
    if (frame.lastSeq !== undefined && frame.type === 'hello') assert.ok(Number.isSafeInteger(frame.lastSeq));
  },
  toJson: (raw) => raw,
  fromJson: (json) => json as Record<string, unknown>,
});

property<Uint8Array>({
  name: 'parseServerFrame never throws on any bytes',
  arbitrary: fc.oneof(byteStream, fc.uint8Array({ maxLength: 256 })),
  check: (bytes) => {
    const parsed = parseServerFrame(Buffer.from(bytes));
    if (!parsed.ok) assert.equal(parsed.problem.code, 'bad_frame');
  },
  toJson: (bytes) => toHex([bytes])[0],
  fromJson: (json) => fromHex([json as string])[0],
});

// ------------------------------------------------------------ protocol v2

const seqLike = fc.oneof(fc.nat(), fc.integer({ min: -5, max: 5 }), fc.constant(Number.MAX_SAFE_INTEGER));

/** Every v2 client frame, with hostile strings in every string field. */
const v2Frame: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  fc.record({ type: fc.constant('hello'), protocol: fc.constant(2), name: nastyText, clientId: nastyText, token: nastyText, key: nastyText }, { requiredKeys: ['type', 'protocol', 'name', 'clientId'] }),
  fc.record({ type: fc.constant('join'), id: nastyText, room: nastyText, lastSeq: seqLike }, { requiredKeys: ['type', 'id', 'room'] }),
  fc.record({ type: fc.constant('part'), id: nastyText, room: nastyText }),
  fc.record({ type: fc.constant('say'), id: nastyText, room: nastyText, text: nastyText, replyTo: seqLike }, { requiredKeys: ['type', 'id', 'room', 'text'] }),
  fc.record({ type: fc.constant('edit'), id: nastyText, room: nastyText, target: seqLike, text: nastyText }),
  fc.record({ type: fc.constant('delete'), id: nastyText, room: nastyText, target: seqLike }),
  fc.record({ type: fc.constant('react'), id: nastyText, room: nastyText, target: seqLike, emoji: nastyText, add: fc.boolean() }),
  fc.record({ type: fc.constant('typing'), room: nastyText }),
  fc.record({ type: fc.constant('read'), id: nastyText, room: nastyText, seq: seqLike }),
  fc.record({ type: fc.constant('topic'), id: nastyText, room: nastyText, text: nastyText }),
  fc.record({ type: fc.constantFrom('kick', 'setOwner'), id: nastyText, room: nastyText, name: nastyText }),
  fc.record({ type: fc.constant('listRooms'), id: nastyText, after: nastyText }, { requiredKeys: ['type', 'id'] }),
  fc.record({ type: fc.constantFrom('conversations', 'releaseName'), id: nastyText }),
  fc.record({ type: fc.constant('listMembers'), id: nastyText, room: nastyText, after: nastyText }, { requiredKeys: ['type', 'id', 'room'] }),
  fc.record({ type: fc.constant('history'), id: nastyText, room: nastyText, before: seqLike, limit: seqLike }, { requiredKeys: ['type', 'id', 'room', 'before'] }),
  fc.record({ type: fc.constant('search'), id: nastyText, room: nastyText, text: nastyText, before: seqLike }, { requiredKeys: ['type', 'id', 'room', 'text'] }),
  fc.record({ type: fc.constant('openDm'), id: nastyText, with: fc.array(nastyText, { maxLength: 16 }) }),
  fc.constantFrom<Record<string, unknown>>({ type: 'ping' }, { type: 'pong' }, { type: 'bye' }),
);

/** What each v2 field must be, written here apart from the table in framing.ts, so the two check each other. */
const V2_FIELD_KINDS: Record<string, string> = {
  protocol: 'number',
  name: 'string',
  clientId: 'string',
  token: 'string',
  key: 'string',
  id: 'string',
  room: 'string',
  lastSeq: 'number',
  text: 'string',
  replyTo: 'number',
  target: 'number',
  emoji: 'string',
  add: 'boolean',
  seq: 'number',
  after: 'string',
  before: 'number',
  limit: 'number',
};
const V2_OPTIONAL: Record<string, string[]> = { hello: ['token', 'key'], join: ['lastSeq'], say: ['replyTo'], listRooms: ['after'], listMembers: ['after'], history: ['limit'], search: ['before'] };
const V2_REQUIRED: Record<string, string[]> = {
  hello: ['name', 'protocol', 'clientId'],
  join: ['id', 'room'],
  part: ['id', 'room'],
  say: ['id', 'room', 'text'],
  edit: ['id', 'room', 'target', 'text'],
  delete: ['id', 'room', 'target'],
  react: ['id', 'room', 'target', 'emoji', 'add'],
  typing: ['room'],
  read: ['id', 'room', 'seq'],
  topic: ['id', 'room', 'text'],
  kick: ['id', 'room', 'name'],
  setOwner: ['id', 'room', 'name'],
  listRooms: ['id'],
  conversations: ['id'],
  listMembers: ['id', 'room'],
  history: ['id', 'room', 'before'],
  search: ['id', 'room', 'text'],
  openDm: ['id', 'with'],
  releaseName: ['id'],
  ping: [],
  pong: [],
  bye: [],
};

property<{ frames: Record<string, unknown>[]; offsets: number[] }>({
  name: 'encoded v2 client frames read back as themselves by the v2 parser and validator, split anywhere',
  arbitrary: fc.record({ frames: fc.array(v2Frame, { minLength: 1, maxLength: 5 }), offsets: fc.array(fc.nat(), { maxLength: 10 }) }),
  check: ({ frames, offsets }) => {
    const bytes = new Uint8Array(Buffer.concat(frames.map((frame) => Buffer.from(JSON.stringify(frame) + '\n', 'utf8'))));
    const splitter = new LineSplitter(1 << 20);
    const lines = cut(bytes, offsets).flatMap((chunk) => splitter.push(Buffer.from(chunk)));
    assert.equal(lines.length, frames.length);
    lines.forEach((line, index) => {
      assert.equal(line.kind, 'line');
      if (line.kind !== 'line') return;
      const parsed = parseClientObjectV2(line.bytes);
      assert.ok(parsed.ok, JSON.stringify(parsed));
      const validated = validateClientFrameV2(parsed.frame);
      assert.ok(validated.ok, JSON.stringify(validated));
      assert.deepEqual(validated.frame, JSON.parse(JSON.stringify(frames[index])));
    });
  },
  toJson: (input) => input,
  fromJson: (json) => json as { frames: Record<string, unknown>[]; offsets: number[] },
});

property<Record<string, unknown>>({
  name: 'parseClientObjectV2 lets an array through only as "with", of at most 16 strings, nothing nested, and never throws',
  arbitrary: fc.dictionary(fc.constantFrom('type', 'with', 'id', 'room', 'names', '__proto__', 'constructor'), fc.oneof(fc.jsonValue(), fc.array(fc.string(), { maxLength: 20 }))),
  check: (value) => {
    const text = JSON.stringify(value) ?? 'null';
    for (const line of [text, text.replace(/^\{/, '{"__proto__":1,')]) {
      const parsed = parseClientObjectV2(Buffer.from(line, 'utf8'));
      if (!parsed.ok) {
        assert.equal(parsed.problem.code, 'bad_frame');
        continue;
      }
      assert.equal(Object.getPrototypeOf(parsed.frame), Object.prototype);
      for (const [key, field] of Object.entries(parsed.frame)) {
        assert.ok(!['__proto__', 'constructor', 'prototype'].includes(key), `key ${key} let through`);
        if (field === null || typeof field !== 'object') continue;
        assert.equal(key, 'with', `an object or array in "${key}" let through`);
        assert.ok(Array.isArray(field) && field.length <= 16 && field.every((item) => typeof item === 'string'), 'a bad "with" let through');
      }
    }
  },
  toJson: (value) => value,
  fromJson: (json) => json as Record<string, unknown>,
});

property<Record<string, unknown>>({
  name: 'validateClientFrameV2 accepts only frames whose fields have the types of the protocol',
  arbitrary: fc.dictionary(
    fc.constantFrom('type', 'id', 'room', 'text', 'target', 'emoji', 'add', 'seq', 'before', 'limit', 'after', 'with', 'name', 'protocol', 'clientId', 'key', 'replyTo', 'lastSeq'),
    fc.oneof(fc.constantFrom(...Object.keys(V2_REQUIRED), 'hasOwnProperty', 'welcome'), fc.string(), fc.double(), fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.string(), { maxLength: 3 })),
  ),
  check: (raw) => {
    const result = validateClientFrameV2(raw);
    if (!result.ok) {
      assert.equal(result.problem.code, 'bad_frame');
      return;
    }
    const frame = result.frame as unknown as Record<string, unknown>;
    const type = frame.type as string;
    assert.ok(Object.hasOwn(V2_REQUIRED, type), `type ${type} let through`);
    for (const field of V2_REQUIRED[type]) assert.notEqual(frame[field], undefined, `${type} without ${field}`);
    for (const field of [...V2_REQUIRED[type], ...(V2_OPTIONAL[type] ?? [])]) {
      if (frame[field] === undefined) continue;
      if (field === 'with') {
        assert.ok(Array.isArray(frame.with), 'openDm.with is an array');
        continue;
      }
      assert.equal(typeof frame[field], V2_FIELD_KINDS[field], `${type}.${field}`);
      if (V2_FIELD_KINDS[field] === 'number') assert.ok(Number.isSafeInteger(frame[field]), `${type}.${field} is whole`);
    }
  },
  toJson: (raw) => raw,
  fromJson: (json) => json as Record<string, unknown>,
});

property<Uint8Array>({
  name: 'parseServerFrameV2 never throws on any bytes',
  arbitrary: fc.oneof(byteStream, fc.uint8Array({ maxLength: 256 })),
  check: (bytes) => {
    const parsed = parseServerFrameV2(Buffer.from(bytes));
    if (!parsed.ok) assert.equal(parsed.problem.code, 'bad_frame');
    else assert.equal(typeof parsed.frame.type, 'string');
  },
  toJson: (bytes) => toHex([bytes])[0],
  fromJson: (json) => fromHex([json as string])[0],
});

// ------------------------------------------------------------ the suite

describe('fuzz: frame parser and validator', function () {
  this.timeout(60_000 + TIME_MS * 2 * 10);
  const regressions = readRegressions();

  before(() => console.log(`      seed ${SEED} (rerun with FUZZ_SEED=${SEED}), ${TIME_MS} ms per property`));

  it('every multi-byte character split at every byte position decodes the same', () => {
    const samples = ['{"type":"say","id":"é😀","text":"👩‍👩‍👧 e\u0301 ✓ \u2028"}\r\n{"type":"ping"}\n', '{"type":"hello","name":"日本語","room":"ŁÓDŹ"}\n\n'];
    for (const sample of samples) {
      const bytes = new Uint8Array(Buffer.from(sample, 'utf8'));
      const whole = decodeAll([bytes], 1 << 16);
      assert.ok(whole.every((result) => result.kind === 'frame'));
      for (let first = 0; first <= bytes.length; first++) {
        assert.deepEqual(decodeAll([bytes.subarray(0, first), bytes.subarray(first)], 1 << 16), whole, `split at ${first}`);
      }
    }
  });

  for (const definition of properties) {
    describe(definition.name, () => {
      const saved = regressions.filter((entry) => entry.property === definition.name);
      if (saved.length > 0) {
        it(`replays ${saved.length} saved regression case(s)`, () => {
          for (const entry of saved) definition.check(definition.fromJson(entry.input));
        });
      }

      it(`holds for random inputs (${TIME_MS} ms)`, () => {
        const details = fc.check(fc.property(definition.arbitrary, (input) => definition.check(input)), {
          seed: SEED,
          interruptAfterTimeLimit: TIME_MS,
          numRuns: Number.MAX_SAFE_INTEGER,
        });
        if (details.failed && details.counterexample) {
          const input = details.counterexample[0];
          saveRegression({ property: definition.name, input: definition.toJson(input), found: new Date().toISOString(), seed: details.seed });
          throw new Error(`counterexample after ${details.numRuns} runs, saved to test/fuzz/regressions.json: ${fc.stringify(input)}\n${String(details.errorInstance)}`);
        }
        console.log(`        ${details.numRuns} inputs`);
      });
    });
  }
});
