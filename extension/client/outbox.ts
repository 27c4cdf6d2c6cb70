/**
 * What a person wrote that the server has not acknowledged yet. Each entry
 * keeps its id, so a message sent again after a reconnect is stored once. The
 * box is kept in a store (the extension's global state) under its room's key,
 * so it survives a window reload.
 *
 * It does not import `vscode`, and knows nothing of how the panel shows it:
 * the session maps entries to the panel's views.
 */
import { nameKey } from '../../shared/names';
import { Emitter } from '../emitter';

export interface OutboxEntry {
  id: string;
  text: string;
  /** When it was written (epoch ms). */
  createdAt: number;
  /** The seq of the message it answers (protocol v2). */
  replyTo?: number;
}

/** Where outboxes are kept, each under its own key (extension/storedState.ts gives the real one). */
export interface OutboxStorage {
  load(key: string): OutboxEntry[];
  save(key: string, entries: readonly OutboxEntry[]): void;
}

/** A seat in a room: the server, the room and the name (as names compare). */
export interface SeatAddress {
  host: string;
  port: number;
  room: string;
  name: string;
}

/**
 * Where a seat's unsent messages are kept: per server, room and name, so two
 * windows of one installation in one room under different names never send
 * each other's words.
 */
export function outboxKey({ host, port, room, name }: SeatAddress): string {
  return `${host}:${port}/${room}/${nameKey(name)}`;
}

export class Outbox {
  private readonly entryList: OutboxEntry[];
  private readonly changeEmitter = new Emitter<readonly OutboxEntry[]>();
  /** The entries, each time they change. */
  readonly onChange = this.changeEmitter.event;

  constructor(
    private readonly storage: OutboxStorage,
    private readonly key: string,
  ) {
    this.entryList = [...storage.load(key)];
  }

  get entries(): readonly OutboxEntry[] {
    return this.entryList;
  }

  find(id: string): OutboxEntry | undefined {
    return this.entryList.find((entry) => entry.id === id);
  }

  add(entry: OutboxEntry): void {
    this.entryList.push(entry);
    this.changed();
  }

  /** Takes an entry out (acknowledged, or refused for good); false when it was not there. */
  remove(id: string): boolean {
    const index = this.entryList.findIndex((entry) => entry.id === id);
    if (index === -1) return false;
    this.entryList.splice(index, 1);
    this.changed();
    return true;
  }

  dispose(): void {
    this.changeEmitter.dispose();
  }

  private changed(): void {
    this.storage.save(this.key, this.entryList);
    this.changeEmitter.fire([...this.entryList]);
  }
}
