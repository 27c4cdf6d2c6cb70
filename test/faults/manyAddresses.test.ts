/**
 * Connections from many addresses, each new. The per-address limits remember
 * every address (an IPv6 peer by its /64) for a minute, and past 10,000
 * remembered addresses each new one made the server walk the whole map to
 * forget quiet ones, though none is quiet yet when they all arrived within the
 * minute. So each new address costs time in proportion to how many came
 * before: a peer with many addresses (a routed IPv6 /48 holds 65,536 /64s)
 * makes every connection dearer, before any hello or token is looked at.
 *
 * Measured by the outside review after issue 8, with `--limit-loopback` and
 * one connection from each of 40,000 loopback addresses: the server's CPU per
 * 5,000 connections rose from 630 ms (5,000 to 10,000) to 10,370 ms (35,000 to
 * 40,000), about 2 ms of event loop per connection by the end.
 *
 * What must hold: a new connection costs about the same however many
 * addresses the server is keeping track of.
 */
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { ServerProcess } from '../support/serverProcess';

const BATCH = 5_000;
const BATCHES = Number(process.env.MANY_ADDRESSES_BATCHES ?? 5);
const IN_FLIGHT = 50;

/** CPU time a process has used (user and system), in ms, from /proc (clock ticks of 10 ms). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** The k-th distinct loopback address, 127.1.0.0 onwards (Linux answers on all of 127.0.0.0/8). */
function loopbackAddress(index: number): string {
  return `127.${1 + (index >> 16)}.${(index >> 8) & 255}.${index & 255}`;
}

/** Opens one connection from `localAddress` and closes it as soon as it is established. */
function touch(port: number, localAddress: string): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress });
    socket.once('connect', () => {
      socket.destroy();
      resolve();
    });
    socket.once('error', () => resolve());
  });
}

describe('faults: connections from many addresses', function () {
  this.timeout(240_000);
  let server: ServerProcess;

  before(async () => {
    server = await ServerProcess.start({ memory: true, args: ['--limit-loopback'] });
  });
  after(async () => {
    await server.dispose();
  });

  it(`keeps the cost of a new connection flat up to ${BATCH * BATCHES} addresses seen within a minute`, async () => {
    const perBatch: number[] = [];
    for (let batch = 0; batch < BATCHES; batch++) {
      const before = cpuMs(server.pid);
      for (let next = batch * BATCH; next < (batch + 1) * BATCH; next += IN_FLIGHT) {
        await Promise.all(Array.from({ length: IN_FLIGHT }, (_, offset) => touch(server.port, loopbackAddress(next + offset))));
      }
      perBatch.push(cpuMs(server.pid) - before);
    }
    console.log(`      server CPU per ${BATCH} new addresses: ${perBatch.map((ms) => `${ms} ms`).join(', ')}`);
    // The first batch also warms the server up, so the second is the baseline.
    const baseline = Math.max(perBatch[1], 100);
    const last = perBatch[perBatch.length - 1];
    assert.ok(
      last < baseline * 3,
      `${BATCH} connections cost the server ${last} ms of CPU once ${BATCH * (BATCHES - 1)} addresses were known, against ${baseline} ms at first: each new address walks every known one`,
    );
  });
});
