/** Pure rules: names, the rate limit and the access gate, with the clock under the test's control. */
import assert from 'node:assert/strict';
import { isBlankText, nameKey, nameProblem, roomProblem } from '../../shared/names';
import { AccessGate } from '../../server/accessGate';
import { addressKey, PerAddressRate } from '../../server/addressLimits';
import { seatKeys } from '../../server/seatNames';
import { isLoopbackHost } from '../../shared/addresses';
import { TokenBucket } from '../../server/rateLimiter';
import { inertNotificationText } from '../../extension/notificationText';

describe('name rules', () => {
  it('accepts 1 to 32 characters and refuses 0 and 33', () => {
    assert.equal(nameProblem('a'), undefined);
    assert.equal(nameProblem('a'.repeat(32)), undefined);
    assert.equal(nameProblem('🐙'.repeat(32)), undefined, 'counted in characters, not UTF-16 units');
    assert.match(nameProblem('') ?? '', /empty/);
    assert.match(nameProblem('a'.repeat(33)) ?? '', /32/);
  });

  it('refuses control characters, invisible formatting and surrounding spaces', () => {
    for (const name of ['a\nb', 'a\u0000b', 'a\u200Bb', 'a\u202Eb', ' a', 'a ', '\ta']) assert.ok(nameProblem(name), JSON.stringify(name));
  });

  it('refuses names a terminal user would read as someone else speaking', () => {
    for (const name of ['alice: hi', 'a:b', 'alice (edited)', 'alice (to bob)', 'alice ﹕ x']) assert.ok(nameProblem(name), JSON.stringify(name));
    for (const name of ['Bob (TA)', 'to be', 'edited']) assert.equal(nameProblem(name), undefined, name);
  });

  it('refuses lone surrogates, default-ignorable code points and fillers, naming the character', () => {
    assert.match(nameProblem('a\uD800') ?? '', /U\+D800/);
    assert.match(nameProblem('\uDC00a') ?? '', /U\+DC00/);
    assert.match(nameProblem('alice\u3164') ?? '', /U\+3164 HANGUL FILLER/);
    assert.match(nameProblem('\u115Fx') ?? '', /U\+115F HANGUL CHOSEONG FILLER/);
    assert.match(nameProblem('x\u2800') ?? '', /U\+2800 BRAILLE PATTERN BLANK/);
    assert.match(nameProblem('alice\u034F') ?? '', /U\+034F COMBINING GRAPHEME JOINER/);
    assert.match(nameProblem('a\u200Db') ?? '', /U\+200D ZERO WIDTH JOINER/, 'a joiner between letters is not an emoji sequence');
    assert.match(nameProblem('a\uFE0F') ?? '', /U\+FE0F/, 'a variation selector after a letter is not an emoji');
    assert.match(nameProblem('x\u{E0041}') ?? '', /U\+E0041/);
    assert.match(roomProblem('room\uD83D') ?? '', /U\+D83D/);
  });

  it('allows emoji: ZWJ sequences, skin tones, variation selectors, flags, tag sequences and keycaps', () => {
    for (const name of ['🐙', '👩‍💻', '👨‍👩‍👧‍👦', '🏳️‍🌈', '👍🏽', '❤️', '🇫🇷', '🏴󠁧󠁢󠁳󠁣󠁴󠁿', '1️⃣', 'zoë 🐙']) assert.equal(nameProblem(name), undefined, name);
  });

  it('takes a message made only of spaces and invisible characters as blank', () => {
    for (const text of ['', ' ', '\u200B', '\u3164', '\u2800 \u2060', '\uFEFF\u200D']) assert.equal(isBlankText(text), true, JSON.stringify(text));
    for (const text of ['a', '\u200B👍', '‍🐙']) assert.equal(isBlankText(text), false, JSON.stringify(text));
  });

  it('refuses reserved names in any case or width', () => {
    for (const name of ['server', 'SERVER', 'ｓｅｒｖｅｒ', 'System']) assert.match(nameProblem(name) ?? '', /reserved/);
  });

  it('compares names without case and after normalisation', () => {
    assert.equal(nameKey('Zoë'), nameKey('ZOE\u0308'));
    assert.equal(nameKey('ｆｕｌｌ'), nameKey('FULL'));
    assert.notEqual(nameKey('alice'), nameKey('alicia'));
  });

  it('applies the same checks to room names with a longer limit', () => {
    assert.equal(roomProblem('r'.repeat(64)), undefined);
    assert.ok(roomProblem('r'.repeat(65)));
    assert.ok(roomProblem(''));
  });
});

describe('seats of look-alike names', () => {
  const sameSeat = (a: string, b: string): boolean => seatKeys(a).some((key) => seatKeys(b).includes(key));

  it('puts names that look alike on one seat, from Unicode confusables data, before and after case folding', () => {
    for (const [a, b] of [
      ['alice', '\u0430lice'],
      ['alice', 'al\u0131ce'],
      ['Alice', 'AIice'],
      ['alice', '\u0410LICE'],
      ['paypal', 'p\u0430yp\u0430l'],
      ['m', 'rn'],
      ['❤️', '❤'],
    ]) {
      assert.ok(sameSeat(a, b), `${a} / ${b}`);
    }
  });

  it('keeps different names apart', () => {
    for (const [a, b] of [
      ['alice', 'alicia'],
      ['bob', 'rob'],
      ['👩‍💻', '👨‍💻'],
      ['zoë', 'zoe'],
    ]) {
      assert.ok(!sameSeat(a, b), `${a} / ${b}`);
    }
  });
});

describe('addresses as the server counts them', () => {
  it('counts an IPv6 address by its /64 prefix, however it is written, and IPv4 as itself', () => {
    assert.equal(addressKey('2001:db8:1:2::1'), '2001:db8:1:2::/64');
    assert.equal(addressKey('2001:0db8:0001:0002:ffff:0:0:9'), '2001:db8:1:2::/64');
    assert.equal(addressKey('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(addressKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
    assert.equal(addressKey('::ffff:192.0.2.7'), '192.0.2.7');
    assert.equal(addressKey('192.0.2.7'), '192.0.2.7');
    assert.equal(addressKey('64:ff9b::192.0.2.7'), '64:ff9b:0:0::/64');
  });

  it('locks out the whole /64 of an IPv6 peer that keeps failing, and not its neighbours', () => {
    const gate = new AccessGate({ token: 't', maxFailures: 3, failureWindowMs: 60_000, lockoutMs: 60_000 });
    for (const address of ['2001:db8:1:2::1', '2001:db8:1:2::2', '2001:db8:1:2:abcd::3']) gate.check('wrong', address);
    assert.equal(gate.check('t', '2001:db8:1:2:ffff:ffff:ffff:ffff'), 'locked_out');
    assert.equal(gate.check('t', '2001:db8:1:3::1'), 'allowed');
  });

  it('allows so many a minute per address, then one every 60/N seconds, with loopback exempt', () => {
    let now = 0;
    const rate = new PerAddressRate(3, true, () => now);
    for (let i = 0; i < 3; i += 1) assert.equal(rate.tryTake('192.0.2.1'), true);
    assert.equal(rate.tryTake('192.0.2.1'), false);
    assert.equal(rate.tryTake('192.0.2.2'), true, 'another address has its own share');
    for (let i = 0; i < 10; i += 1) assert.equal(rate.tryTake('127.0.0.1'), true, 'loopback is exempt');
    now += 20_000;
    assert.equal(rate.tryTake('192.0.2.1'), true);
    assert.equal(rate.tryTake('192.0.2.1'), false);
  });
});

describe('token bucket', () => {
  it('allows the burst at once, then one token per interval', () => {
    let now = 1_000;
    const bucket = new TokenBucket(10, 2, () => now);
    for (let i = 0; i < 10; i += 1) assert.equal(bucket.tryTake(), true, `burst ${i}`);
    assert.equal(bucket.tryTake(), false);
    assert.equal(bucket.msUntilNextToken(), 500);
    now += 499;
    assert.equal(bucket.tryTake(), false);
    now += 1;
    assert.equal(bucket.tryTake(), true);
    assert.equal(bucket.tryTake(), false);
  });

  it('refills up to the burst and no further', () => {
    let now = 0;
    const bucket = new TokenBucket(3, 2, () => now);
    for (let i = 0; i < 3; i += 1) bucket.tryTake();
    now += 60_000;
    for (let i = 0; i < 3; i += 1) assert.equal(bucket.tryTake(), true);
    assert.equal(bucket.tryTake(), false);
  });
});

describe('access gate', () => {
  const lan = '192.0.2.7';

  it('lets anyone in when the server has no token', () => {
    const gate = new AccessGate({ token: undefined, maxFailures: 3, failureWindowMs: 60_000, lockoutMs: 60_000 });
    assert.equal(gate.check(undefined, lan), 'allowed');
  });

  it('compares tokens of any length without throwing', () => {
    const gate = new AccessGate({ token: 'correct horse', maxFailures: 99, failureWindowMs: 60_000, lockoutMs: 60_000 });
    assert.equal(gate.check('correct horse', lan), 'allowed');
    assert.equal(gate.check('correct hors', lan), 'unauthorized');
    assert.equal(gate.check('x'.repeat(10_000), lan), 'unauthorized');
    assert.equal(gate.check(undefined, lan), 'unauthorized');
  });

  it('locks an address out for a minute after three failures within a minute', () => {
    let now = 0;
    const gate = new AccessGate({ token: 't', maxFailures: 3, failureWindowMs: 60_000, lockoutMs: 60_000, now: () => now });
    gate.check('a', lan);
    gate.check('b', lan);
    assert.equal(gate.check('t', lan), 'allowed', 'two failures are not yet a lock-out');
    gate.check('c', lan);
    assert.equal(gate.check('t', lan), 'locked_out', 'even the right token waits out the lock');
    assert.equal(gate.check('t', '192.0.2.8'), 'allowed', 'other addresses are not affected');
    now += 60_001;
    assert.equal(gate.check('t', lan), 'allowed');
  });

  it('forgets failures older than the window', () => {
    let now = 0;
    const gate = new AccessGate({ token: 't', maxFailures: 3, failureWindowMs: 60_000, lockoutMs: 60_000, now: () => now });
    gate.check('a', lan);
    gate.check('b', lan);
    now += 61_000;
    gate.check('c', lan);
    assert.equal(gate.check('t', lan), 'allowed');
  });

  it('never locks out loopback', () => {
    const gate = new AccessGate({ token: 't', maxFailures: 1, failureWindowMs: 60_000, lockoutMs: 60_000 });
    for (let i = 0; i < 5; i += 1) gate.check('wrong', '127.0.0.1');
    assert.equal(gate.check('t', '127.0.0.1'), 'allowed');
    assert.ok(isLoopbackHost('::1') && isLoopbackHost('::ffff:127.0.0.1') && !isLoopbackHost(lan));
  });
});

describe('text shown in notifications', () => {
  it('can never carry a link or a command: brackets become look-alikes, control and bidi characters spaces', () => {
    const hostile = '@you [Open chat](command:workbench.action.closeWindow) \u202Eevil\u0007 [x](https://phish.example)';
    const shown = inertNotificationText(hostile, 500);
    assert.ok(!/[[\]]/.test(shown), shown);
    assert.ok(!shown.includes('\u202E') && !shown.includes('\u0007'), shown);
    assert.match(shown, /⟦Open chat⟧\(command:/);
  });

  it('shortens long text to the limit with an ellipsis', () => {
    assert.equal(inertNotificationText('a'.repeat(200), 10), 'a'.repeat(9) + '…');
  });
});
