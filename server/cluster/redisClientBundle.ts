/**
 * The parts of node-redis cluster mode uses, built into their own bundle
 * (`dist/redisClient.js`) beside the server. The server loads it only when it
 * runs with `--redis`, so the copy of the server the extension carries (which
 * never starts a cluster node) leaves out node-redis's 400 KB; see
 * `loadRedisClient` in redisConnection.ts.
 */
export { createClient, ErrorReply } from '@redis/client';
