/** Certificate pins: the forms a fingerprint may be typed in, and the comparison that decides whether to connect. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { fingerprintMismatchMessage, fingerprintsMatch, normalizeFingerprint } from '../../extension/certificatePin';

const BYTES = createHash('sha256').update('a certificate').digest();
const CANONICAL = [...BYTES].map((byte) => byte.toString(16).padStart(2, '0').toUpperCase()).join(':');

describe('certificate pins', () => {
  it('reads a SHA-256 fingerprint with colons, spaces, bare hex, in either case', () => {
    for (const typed of [CANONICAL, CANONICAL.toLowerCase(), CANONICAL.replace(/:/g, ' '), BYTES.toString('hex'), `  ${CANONICAL}\n`]) {
      assert.equal(normalizeFingerprint(typed), CANONICAL, typed);
    }
  });

  it('refuses what is not a SHA-256 fingerprint: too short, too long, SHA-1, not hex', () => {
    for (const typed of ['', 'AB', CANONICAL.slice(3), `${CANONICAL}:00`, BYTES.subarray(0, 20).toString('hex'), CANONICAL.replace('A', 'G'), 'token=abc']) {
      assert.equal(normalizeFingerprint(typed), undefined, typed);
    }
  });

  it('matches the same fingerprint in any form, and nothing else', () => {
    assert.equal(fingerprintsMatch(CANONICAL, BYTES.toString('hex')), true);
    const flipped = Buffer.from(BYTES);
    flipped[31] ^= 1;
    assert.equal(fingerprintsMatch(CANONICAL, flipped.toString('hex')), false, 'one bit off');
    assert.equal(fingerprintsMatch(CANONICAL, ''), false);
    assert.equal(fingerprintsMatch('', ''), false, 'two non-fingerprints never match each other');
    assert.equal(fingerprintsMatch(CANONICAL, CANONICAL.slice(0, 20)), false, 'a prefix is not a match (and does not throw)');
  });

  it('explains a mismatch in words a person can act on', () => {
    const message = fingerprintMismatchMessage('192.168.1.5:33000', CANONICAL, 'no certificate');
    assert.match(message, /^The server's certificate fingerprint does not match the invite/);
    assert.ok(message.includes(CANONICAL) && message.includes('192.168.1.5:33000'));
  });
});
