/** A `KeyValueStore` kept in memory, standing in for the extension's `globalState` outside VS Code. */
import type { KeyValueStore } from '../../extension/chatClient';

export function memoryStore(): KeyValueStore {
  const values = new Map<string, unknown>();
  return {
    get: <T>(key: string) => values.get(key) as T | undefined,
    update: async (key: string, value: unknown) => void values.set(key, value),
  };
}
