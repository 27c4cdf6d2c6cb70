/**
 * Loaded into our server by the benchmark alone (`node --expose-gc --require
 * serverMemoryProbe.js dist/server.js …`), so that memory can be read after a
 * full collection: without one, RSS holds whatever garbage V8 has not yet
 * collected, and two runs of the same phase differed by half. On SIGUSR2 it
 * collects, then prints one line the coordinator waits for, with V8's own
 * figures, so a figure over its budget can be told apart as heap or buffers.
 */
import { join } from 'node:path';
import { writeHeapSnapshot } from 'node:v8';
import { HEAP_SNAPSHOT_DIR_VARIABLE, MEMORY_LINE_PREFIX } from './workerMessages';

let snapshots = 0;

const collect = (globalThis as { gc?: () => void }).gc;

process.on('SIGUSR2', () => {
  if (collect === undefined) {
    process.stdout.write(`${MEMORY_LINE_PREFIX}${JSON.stringify({ error: 'started without --expose-gc' })}\n`);
    return;
  }
  // Twice: the first collection's finalizers can let go of more.
  collect();
  collect();
  // Answered before a snapshot is written: writing one takes seconds, and memory of its own.
  process.stdout.write(`${MEMORY_LINE_PREFIX}${JSON.stringify(process.memoryUsage())}\n`);
  const snapshotDir = process.env[HEAP_SNAPSHOT_DIR_VARIABLE];
  if (snapshotDir !== undefined) writeHeapSnapshot(join(snapshotDir, `server-${process.pid}-${++snapshots}.heapsnapshot`));
});
