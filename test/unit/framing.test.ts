/** The frame parser: split anywhere, fed garbage, it yields the same frames and never throws. */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ClientFrameDecoder, LineSplitter, parseFlatJsonObject, parseServerFrame, validateClientFrame } from '../../shared/framing';
import type { ClientFrameResult } from '../../shared/framing';

function decodeAll(chunks: Buffer[], maxFrameBytes = 16 * 1024): ClientFrameResult[] {
  const decoder = new ClientFrameDecoder(maxFrameBytes);
  return chunks.flatMap((chunk) => decoder.push(chunk));
}

const sample = Buffer.from(
  [
    JSON.stringify({ type: 'hello', name: 'zoë 🐙', room: 'lobby', clientId: 'c1', lastSeq: 4 }),
    JSON.stringify({ type: 'say', id: 'm1', text: 'héllo wörld — 你好 🎉\nsecond line' }),
    JSON.stringify({ type: 'ping' }),
  ].join('\r\n') + '\n',
  'utf8',
);

describe('frame parser', () => {
  it('decodes a stream split at every single position, multi-byte characters cut in half included', () => {
    const whole = decodeAll([sample]);
    assert.equal(whole.length, 3);
    assert.ok(whole.every((result) => result.kind === 'frame'));
    for (let cut = 0; cut <= sample.length; cut += 1) {
      assert.deepEqual(decodeAll([sample.subarray(0, cut), sample.subarray(cut)]), whole, `cut at ${cut}`);
    }
  });

  it('decodes the stream fed one byte at a time', () => {
    const bytes = [...sample].map((byte) => Buffer.from([byte]));
    assert.deepEqual(decodeAll(bytes), decodeAll([sample]));
  });

  it('decodes the same frames however the stream is cut into pieces (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: sample.length }), { maxLength: 12 }), (cuts) => {
        const points = [...new Set(cuts)].sort((a, b) => a - b);
        const pieces: Buffer[] = [];
        let last = 0;
        for (const point of points) {
          pieces.push(sample.subarray(last, point));
          last = point;
        }
        pieces.push(sample.subarray(last));
        assert.deepEqual(decodeAll(pieces), decodeAll([sample]));
      }),
      { numRuns: 300 },
    );
  });

  it('never throws on random bytes, and reports every problem with a known code', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 20 }), (chunks) => {
        const results = decodeAll(chunks.map((chunk) => Buffer.from(chunk)), 256);
        for (const result of results) {
          if (result.kind === 'problem') assert.ok(['bad_frame', 'too_long'].includes(result.problem.code));
        }
      }),
      { numRuns: 500 },
    );
  });

  it('refuses invalid UTF-8 instead of replacing it', () => {
    const [result] = decodeAll([Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x7d, 0x0a])]);
    assert.equal(result.kind, 'problem');
    assert.match(result.kind === 'problem' ? result.problem.message : '', /UTF-8/);
  });

  it('reports a frame over the limit once, even when it arrives without a newline', () => {
    const decoder = new ClientFrameDecoder(8);
    assert.deepEqual(decoder.push(Buffer.from('12345678')), []);
    const results = decoder.push(Buffer.from('9'));
    assert.equal(results.length, 1);
    assert.equal(results[0].kind === 'problem' && results[0].problem.code, 'too_long');
    assert.deepEqual(decoder.push(Buffer.from('{"type":"ping"}\n')), [], 'nothing is read after an overflow');
  });

  it('refuses nested values and prototype keys before looking at fields', () => {
    for (const text of ['{"type":"ping","x":{}}', '{"type":"ping","x":[1]}', '{"__proto__":{"a":1},"type":"ping"}', '{"type":"ping","constructor":1}']) {
      const parsed = parseFlatJsonObject(Buffer.from(text));
      assert.equal(parsed.ok, false, text);
    }
  });

  it('checks field types of client frames', () => {
    const cases: [Record<string, unknown>, boolean][] = [
      [{ type: 'say', id: 'a', text: 'b' }, true],
      [{ type: 'say', id: 'a' }, false],
      [{ type: 'say', id: 1, text: 'b' }, false],
      [{ type: 'hello', name: 'x', lastSeq: 1.5 }, false],
      [{ type: 'hello', name: 'x', lastSeq: 3 }, true],
      [{ type: 'toString' }, false],
      [{ type: 'bye' }, true],
    ];
    for (const [frame, ok] of cases) assert.equal(validateClientFrame(frame).ok, ok, JSON.stringify(frame));
  });

  it('parses server frames and refuses a welcome without members', () => {
    assert.ok(parseServerFrame(Buffer.from('{"type":"welcome","you":"a","room":"r","members":["a"],"seq":0}')).ok);
    assert.equal(parseServerFrame(Buffer.from('{"type":"welcome","you":"a","room":"r","seq":0}')).ok, false);
    assert.equal(parseServerFrame(Buffer.from('{"type":"nope"}')).ok, false);
  });

  it('hands out an unterminated rest for classic clients, without its carriage return', () => {
    const splitter = new LineSplitter(100);
    assert.deepEqual(splitter.push(Buffer.from('one\r\ntwo')), [{ kind: 'line', bytes: Buffer.from('one') }]);
    assert.equal(splitter.bufferedBytes, 3);
    assert.deepEqual(splitter.takeRest(), Buffer.from('two'));
    assert.equal(splitter.takeRest(), undefined);
  });
});
