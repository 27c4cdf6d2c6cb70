/** Pure rules: names, the rate limit and the access gate, with the clock under the test's control. */
import assert from 'node:assert/strict';
import { nameKey, nameProblem, roomProblem } from '../../shared/names';
import { AccessGate } from '../../server/accessGate';
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
