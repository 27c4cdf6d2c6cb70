/**
 * The cluster benchmark (`npm run bench` runs it last; `node out/bench/cluster.js`
 * runs it alone): the same fan-out load on one node with the file log and on
 * three nodes sharing the room through Redis, on this machine.
 *
 * Load: clients spread evenly over the nodes, all in one room, each sending a
 * message every 500 ms; every client receives every message. Reported per
 * setup: deliveries per second, CPU per delivery (the nodes together, and
 * Redis apart, from /proc/<pid>/stat), and the latency from send to each
 * delivery (p50, p99; sender and receivers share this process's clock).
 * Then, on the cluster, the node holding a third of the clients is killed
 * with -9, and the time until each of its clients (the extension's own
 * client, given every node's address) is welcomed by a survivor is reported.
 *
 * Every process is stopped by its own PID; every wait is bounded.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ChatClient } from '../extension/client/chatClient';
import { storedOutboxes } from '../extension/storedState';
import { encodeFrame, LineSplitter } from '../shared/framing';
import { SERVER_NODE_FLAGS } from '../shared/serverRuntime';

const quick = process.argv.includes('--quick') || process.env.BENCH_QUICK === '1';
const settings = {
  clients: quick ? 60 : 120,
  sendIntervalMs: 500,
  warmupMs: quick ? 2_000 : 4_000,
  runMs: quick ? 4_000 : 10_000,
  failoverClients: quick ? 30 : 60,
  nodeTtlMs: 5_000,
};

const repoRoot = resolve(__dirname, '..', '..');
const serverScript = join(repoRoot, 'dist', 'server.js');
const ROOM = 'bench';
const CLOCK_TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));

function cpuMicros(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLOCK_TICKS_PER_SECOND;
}

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const probe = createServer();
    probe.once('error', fail);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => done(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** A child process started and stopped by its PID; `ready` resolves when its output matches. */
class Child {
  output = '';
  readonly exited: Promise<void>;
  constructor(
    readonly process: ChildProcess,
    ready: RegExp,
    readonly started: Promise<RegExpExecArray> = new Promise((done, fail) => {
      const timer = setTimeout(() => fail(new Error(`not ready within 15 s:\n${this.output}`)), 15_000);
      const onData = (chunk: Buffer): void => {
        this.output += chunk.toString('utf8');
        const match = ready.exec(this.output);
        if (match) {
          clearTimeout(timer);
          done(match);
        }
      };
      process.stdout?.on('data', onData);
      process.stderr?.on('data', onData);
      process.once('exit', (code) => {
        clearTimeout(timer);
        fail(new Error(`exited with ${code}:\n${this.output}`));
      });
    }),
  ) {
    this.exited = new Promise((done) => process.once('exit', () => done()));
    started.catch(() => undefined);
  }

  get pid(): number {
    return this.process.pid as number;
  }

  async kill(): Promise<void> {
    if (this.process.exitCode === null && this.process.signalCode === null) {
      this.process.kill('SIGKILL');
      await this.exited;
    }
  }
}

async function startRedis(dir: string): Promise<{ child: Child; url: string }> {
  const port = await freePort();
  const config = join(dir, 'redis.conf');
  writeFileSync(config, [`port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, 'appendonly yes', 'appendfsync always', 'save ""', 'maxmemory-policy noeviction'].join('\n') + '\n');
  const child = new Child(spawn('redis-server', [config], { stdio: ['ignore', 'pipe', 'pipe'] }), /Ready to accept connections/);
  await child.started;
  return { child, url: `redis://127.0.0.1:${port}` };
}

async function startNode(args: string[]): Promise<{ child: Child; port: number }> {
  const child = new Child(spawn(process.execPath, [...SERVER_NODE_FLAGS, serverScript, '--port', '0', '--rate-burst', '100', '--rate-per-second', '100', ...args], { stdio: ['ignore', 'pipe', 'pipe'] }), /listening on \S+:(\d+)/);
  const match = await child.started;
  return { child, port: Number(match[1]) };
}

/** A v1 member that sends timestamped messages and records the latency of each delivery it receives. */
class LoadClient {
  received = 0;
  private readonly socket: Socket;
  private readonly splitter = new LineSplitter(1 << 20);
  private sent = 0;
  constructor(
    port: number,
    readonly name: string,
    private readonly latencies: number[],
    welcomed: () => void,
  ) {
    this.socket = connect({ host: '127.0.0.1', port });
    this.socket.setNoDelay(true);
    this.socket.on('error', () => undefined);
    this.socket.on('connect', () => this.socket.write(encodeFrame({ type: 'hello', name, room: ROOM, clientId: name })));
    this.socket.on('data', (chunk: Buffer) => {
      for (const line of this.splitter.push(chunk)) {
        if (line.kind !== 'line') continue;
        const text = line.bytes.toString('utf8');
        if (text.startsWith('{"type":"welcome"')) welcomed();
        else if (text.includes('"type":"message"')) {
          const stamp = /"text":"t(\d+\.\d+) /.exec(text);
          if (stamp) {
            this.received += 1;
            this.latencies.push(performance.now() - Number(stamp[1]));
          }
        } else if (text.startsWith('{"type":"ping"')) this.socket.write(encodeFrame({ type: 'pong' }));
      }
    });
  }

  send(): void {
    this.sent += 1;
    this.socket.write(encodeFrame({ type: 'say', id: `${this.name}-${this.sent}`, text: `t${performance.now().toFixed(3)} from ${this.name}` }));
  }

  close(): void {
    this.socket.destroy();
  }
}

interface LoadResult {
  setup: string;
  deliveriesPerSecond: number;
  nodeCpuMicrosPerDelivery: number;
  redisCpuMicrosPerDelivery?: number;
  p50Ms: number;
  p99Ms: number;
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

async function measureLoad(setup: string, ports: number[], nodePids: number[], redisPid: number | undefined): Promise<LoadResult> {
  const latencies: number[] = [];
  let welcomed = 0;
  const clients = Array.from({ length: settings.clients }, (_, i) => new LoadClient(ports[i % ports.length], `load${i}`, latencies, () => (welcomed += 1)));
  const deadline = Date.now() + 30_000;
  while (welcomed < clients.length && Date.now() < deadline) await sleep(50);
  if (welcomed < clients.length) throw new Error(`${setup}: only ${welcomed} of ${clients.length} clients were welcomed`);
  // Each client sends every interval, staggered over it.
  const timers = clients.map((client, i) => {
    let interval: NodeJS.Timeout | undefined;
    const start = setTimeout(() => {
      client.send();
      interval = setInterval(() => client.send(), settings.sendIntervalMs);
    }, (i * settings.sendIntervalMs) / clients.length);
    return () => {
      clearTimeout(start);
      clearInterval(interval);
    };
  });
  await sleep(settings.warmupMs);
  latencies.length = 0;
  const receivedBefore = clients.reduce((sum, client) => sum + client.received, 0);
  const cpuBefore = nodePids.map(cpuMicros);
  const redisBefore = redisPid === undefined ? 0 : cpuMicros(redisPid);
  const startedAt = performance.now();
  await sleep(settings.runMs);
  const seconds = (performance.now() - startedAt) / 1000;
  const deliveries = clients.reduce((sum, client) => sum + client.received, 0) - receivedBefore;
  const nodeCpu = nodePids.map(cpuMicros).reduce((sum, cpu, i) => sum + cpu - cpuBefore[i], 0);
  const redisCpu = redisPid === undefined ? undefined : cpuMicros(redisPid) - redisBefore;
  const measured = [...latencies];
  for (const stop of timers) stop();
  await sleep(500);
  for (const client of clients) client.close();
  return {
    setup,
    deliveriesPerSecond: Math.round(deliveries / seconds),
    nodeCpuMicrosPerDelivery: Math.round((nodeCpu / deliveries) * 10) / 10,
    ...(redisCpu === undefined ? {} : { redisCpuMicrosPerDelivery: Math.round((redisCpu / deliveries) * 100) / 100 }),
    p50Ms: Math.round(percentile(measured, 50) * 10) / 10,
    p99Ms: Math.round(percentile(measured, 99) * 10) / 10,
  };
}

/** Kills the node the failover clients sit on; how long until each is welcomed by a survivor. */
async function measureFailover(nodes: { child: Child; port: number }[]): Promise<number[]> {
  const values = new Map<string, unknown>();
  const outboxes = storedOutboxes({ get: <T>(key: string) => values.get(key) as T | undefined, update: async (key: string, value: unknown) => void values.set(key, value) });
  const addresses = nodes.map((node) => ({ host: '127.0.0.1', port: node.port }));
  const welcomedAt: number[] = [];
  const clients = Array.from({ length: settings.failoverClients }, (_, i) => {
    const chat = new ChatClient({ ...addresses[0], alternates: addresses.slice(1), name: `mover${i}`, room: ROOM, clientId: `mover${i}`, outboxes, initialBackoffMs: 100 });
    chat.onState((state) => {
      if (state.kind === 'connected') welcomedAt[i] = performance.now();
    });
    chat.connect();
    return chat;
  });
  await Promise.all(clients.map((chat) => chat.firstOutcome()));
  const killedAt = performance.now();
  await nodes[0].child.kill();
  const deadline = Date.now() + 30_000;
  while (welcomedAt.some((at) => at < killedAt) && Date.now() < deadline) await sleep(20);
  const back = welcomedAt.map((at) => (at > killedAt ? at - killedAt : Number.POSITIVE_INFINITY));
  for (const chat of clients) chat.dispose();
  return back;
}

export async function runClusterBench(quickRun = quick): Promise<void> {
  settings.runMs = quickRun ? Math.min(settings.runMs, 4_000) : settings.runMs;
  const workDir = mkdtempSync(join(tmpdir(), 'chat-room-cluster-bench-'));
  const children: Child[] = [];
  const hardStop = setTimeout(() => {
    console.error('cluster benchmark exceeded 5 minutes; stopping');
    void Promise.all(children.map((child) => child.kill())).finally(() => process.exit(1));
  }, 5 * 60_000);
  try {
    console.log(`\nCluster: ${settings.clients} clients in one room, each sending every ${settings.sendIntervalMs} ms (${settings.runMs / 1000} s measured)`);
    const single = await startNode(['--data', join(workDir, 'single')]);
    children.push(single.child);
    const one = await measureLoad('1 node, file log', [single.port], [single.child.pid], undefined);
    await single.child.kill();

    const redis = await startRedis(mkdtempSync(join(workDir, 'redis-')));
    children.push(redis.child);
    const nodes = await Promise.all([0, 1, 2].map((i) => startNode(['--redis', redis.url, '--node-id', `bench-${i}`, '--node-ttl-ms', String(settings.nodeTtlMs)])));
    children.push(...nodes.map((node) => node.child));
    const three = await measureLoad('3 nodes, Redis', nodes.map((node) => node.port), nodes.map((node) => node.child.pid), redis.child.pid);
    const back = await measureFailover(nodes);

    console.log('| setup | deliveries/s | node CPU µs/delivery | Redis CPU µs/delivery | p50 ms | p99 ms |');
    console.log('|---|---|---|---|---|---|');
    for (const result of [one, three]) {
      console.log(`| ${result.setup} | ${result.deliveriesPerSecond} | ${result.nodeCpuMicrosPerDelivery} | ${result.redisCpuMicrosPerDelivery ?? '–'} | ${result.p50Ms} | ${result.p99Ms} |`);
    }
    const finite = back.filter(Number.isFinite);
    console.log(
      `Failover: ${settings.failoverClients} clients of a node killed with -9 back on a survivor: p50 ${Math.round(percentile(finite, 50))} ms, p99 ${Math.round(percentile(finite, 99))} ms, max ${Math.round(Math.max(...finite))} ms` +
        (finite.length < back.length ? `; ${back.length - finite.length} not back within 30 s` : ''),
    );
    writeFileSync(join(__dirname, 'last-cluster-results.json'), JSON.stringify({ settings, results: [one, three], failoverMs: back }, null, 2));
  } finally {
    clearTimeout(hardStop);
    await Promise.all(children.map((child) => child.kill()));
    rmSync(workDir, { recursive: true, force: true });
  }
}

// Run alone (`node out/bench/cluster.js`); bench/run.ts imports it and calls runClusterBench itself.
if (/cluster\.js$/.test(process.argv[1] ?? '')) {
  runClusterBench().catch((error: unknown) => {
    console.error(error instanceof Error ? error.stack : String(error));
    process.exit(1);
  });
}
