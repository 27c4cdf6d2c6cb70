/** Stores kept in memory, standing in for the extension's `globalState` outside VS Code. */
import type { OutboxStorage } from '../../extension/client/outbox';
import { type KeyValueStore, storedOutboxes } from '../../extension/storedState';

export function memoryStore(): KeyValueStore {
  const values = new Map<string, unknown>();
  return {
    get: <T>(key: string) => values.get(key) as T | undefined,
    update: async (key: string, value: unknown) => void values.set(key, value),
  };
}

/** Outboxes kept the way the extension keeps them, in a store held in memory. */
export function memoryOutboxes(): OutboxStorage {
  return storedOutboxes(memoryStore());
}
