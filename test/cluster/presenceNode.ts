/**
 * A cluster node that holds seats and nothing else, run as its own process by
 * the presence tests so it can be killed with -9 (or stopped) by its PID.
 *
 * argv[2] is JSON: { url, namespace, nodeId, heartbeatTtlMs, checkIntervalMs, holdLost }.
 * stdin: one JSON command a line, { id, op: 'enter' | 'leave', room, member }.
 * stdout: one JSON line each: { ready }, { id, first | last | error }, { lost }, { resynced }.
 * With holdLost, losses it claims are printed but never confirmed (as if it died announcing them).
 */
import { createInterface } from 'node:readline';
import { ClusterPresence } from '../../server/cluster/clusterPresence';
import { RedisConnection } from '../../server/cluster/redisConnection';

interface NodeConfig {
  url: string;
  namespace: string;
  nodeId: string;
  heartbeatTtlMs: number;
  checkIntervalMs: number;
  holdLost?: boolean;
}

const config = JSON.parse(process.argv[2]) as NodeConfig;
const say = (line: Record<string, unknown>): void => void process.stdout.write(JSON.stringify(line) + '\n');

async function main(): Promise<void> {
  const connection = RedisConnection.open(config.url, { name: config.nodeId });
  await connection.ready(10_000);
  const presence = await ClusterPresence.start(
    connection,
    config.nodeId,
    {
      onLost: async (lost) => {
        say({ lost });
        if (config.holdLost) await new Promise<never>(() => undefined);
      },
      onResynced: (change) => say({ resynced: change }),
    },
    { namespace: config.namespace, heartbeatTtlMs: config.heartbeatTtlMs, checkIntervalMs: config.checkIntervalMs },
  );
  say({ ready: true });
  for await (const line of createInterface({ input: process.stdin })) {
    const command = JSON.parse(line) as { id: string; op: 'enter' | 'leave'; room: string; member: string };
    try {
      if (command.op === 'enter') say({ id: command.id, first: await presence.enter(command.room, command.member) });
      else say({ id: command.id, last: await presence.leave(command.room, command.member) });
    } catch (error) {
      say({ id: command.id, error: String(error) });
    }
  }
  // stdin closed: the test is done with this node.
  presence.dispose();
  connection.dispose();
}

main().catch((error: unknown) => {
  process.stderr.write(`${String(error)}\n`);
  process.exit(1);
});
