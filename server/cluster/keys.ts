/**
 * Where the cluster keeps things in Redis: every key and channel name is made
 * here and nowhere else.
 *
 * A room's keys share the hash tag `{roomKey}`, so they would land in one slot
 * of a sharded Redis; the primitives themselves assume one Redis primary
 * (with replicas), since presence scripts touch several rooms at once.
 *
 * All names start with a namespace (default `chat-room`), so one Redis can
 * serve several clusters, or a test can keep to its own.
 */
export const DEFAULT_NAMESPACE = 'chat-room';

/**
 * A room's events are kept in three streams, one per class (messages,
 * arrivals and departures, changes), each trimmed to the retention on its
 * own, so a crowd coming and going never pushes messages out of the history
 * or the de-duplication window (as with the file log).
 */
export type EventClass = 'message' | 'presence' | 'change';
export const EVENT_CLASSES: readonly EventClass[] = ['message', 'presence', 'change'];

export class ClusterKeys {
  constructor(readonly namespace: string = DEFAULT_NAMESPACE) {
    if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(namespace)) {
      throw new Error(`a cluster namespace is 1-64 letters, digits or _.:- (got ${JSON.stringify(namespace)})`);
    }
  }

  private room(roomKey: string): string {
    if (roomKey.length === 0) throw new Error('a room key must not be empty');
    return `${this.namespace}:room:{${roomKey}}`;
  }

  /** Hash: `epoch` (random, made when the room is first seen), `seq` (the last seq given), `ts` (the last event's time). */
  roomMeta(roomKey: string): string {
    return `${this.room(roomKey)}:meta`;
  }

  /** Stream of one class of the room's events: one entry per event, its ID `<seq>-0`, fields `e` (the encoded event) and `t` (its time). */
  roomEvents(roomKey: string, eventClass: EventClass): string {
    return `${this.room(roomKey)}:events:${eventClass}`;
  }

  /** Sorted set: the de-duplication keys of one class's events, scored by the seq they were stored at, pruned with its stream. */
  roomDedup(roomKey: string, eventClass: EventClass): string {
    return `${this.room(roomKey)}:dedup:${eventClass}`;
  }

  /**
   * Sorted set: deleted messages and the edits of them, rewritten without
   * their text, scored by seq. Their stream entries are removed when the
   * deletion is stored, so the text leaves Redis at once.
   */
  roomRedacted(roomKey: string): string {
    return `${this.room(roomKey)}:redacted`;
  }

  /** Hash: a v1 or classic member's name → the SHA-256 digest of its seat secret, so another node can let the member resume. */
  roomSeatSecrets(roomKey: string): string {
    return `${this.room(roomKey)}:secrets`;
  }

  /** PUB/SUB channel: `<epoch> <seq> <ts> <encoded event>` for each new event. */
  roomChannel(roomKey: string): string {
    return `${this.room(roomKey)}:live`;
  }

  /** Hash: member → how many nodes hold a seat for that member in the room. */
  roomMembers(roomKey: string): string {
    return `${this.room(roomKey)}:members`;
  }

  /** Set: the ids of nodes that are registered and not yet claimed by a survivor. */
  nodes(): string {
    return `${this.namespace}:nodes`;
  }

  /** String with a TTL: present while the node is alive. */
  nodeHeartbeat(nodeId: string): string {
    return `${this.namespace}:node:${nodeId}:alive`;
  }

  /** Hash: JSON `[room, member]` → how many of that member's connections in that room this node holds. */
  nodeSeats(nodeId: string): string {
    return `${this.namespace}:node:${nodeId}:seats`;
  }

  /** Hash: JSON `[room, member]` → the dead node it came from: members this node must still announce as lost. */
  nodeLost(nodeId: string): string {
    return `${this.namespace}:node:${nodeId}:lost`;
  }

  /**
   * The directory (server/directory.ts) of a cluster: its epoch (made on first
   * use; a Redis that comes back empty has none, and every node reloads), the
   * stream of its changes that every node's copy follows, and a counter that
   * numbers them, so a node notices one it missed.
   */
  directoryEpoch(): string {
    return `${this.namespace}:dir:epoch`;
  }

  directoryChanges(): string {
    return `${this.namespace}:dir:changes`;
  }

  directoryCounter(): string {
    return `${this.namespace}:dir:n`;
  }

  /** Hash: identity id → its record (JSON, with the digest of its key and the seat keys of its name). */
  identities(): string {
    return `${this.namespace}:dir:identities`;
  }

  /** Hash: seat key → the identity holding a name with that key. */
  identityNames(): string {
    return `${this.namespace}:dir:names`;
  }

  /** Hash per identity: room key → read marker; present for each of its conversations. */
  readMarkers(identityId: string): string {
    return `${this.readMarkersPrefix()}${identityId}`;
  }

  readMarkersPrefix(): string {
    return `${this.namespace}:dir:markers:`;
  }

  /** Hash: room key → the room's directory entry (JSON). */
  roomEntries(): string {
    return `${this.namespace}:dir:rooms`;
  }

  /** Hash: a DM's participants (sorted identity ids, comma-separated) → its room key. */
  dmsByParticipants(): string {
    return `${this.namespace}:dir:dms`;
  }

  /** The prefix every room key starts with, for scripts that build room keys themselves. */
  roomPrefix(): string {
    return `${this.namespace}:room:`;
  }
}
