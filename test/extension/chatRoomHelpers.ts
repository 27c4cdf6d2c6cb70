// Shared by the Chat Room feature tests that run inside the extension host:
// the extension's test API, the commands' results, per-test cleanup, and
// bounded waiting.
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { ChatRoomApi } from '../../extension/extension';

export const EXTENSION_ID = 'chat-room.chat-room';

/** What `chatRoom.join` resolves to. */
export type JoinResult = { joined: boolean; code?: string; name?: string; reason?: string };
/** What `chatRoom.startServer` resolves to. */
export type StartResult = { started: boolean; port?: number; lan?: boolean; fingerprint?: string; code?: string; reason?: string; suggestedPort?: number };

export async function chatRoomApi(): Promise<ChatRoomApi> {
  const extension = vscode.extensions.getExtension<ChatRoomApi>(EXTENSION_ID);
  assert.ok(extension, `${EXTENSION_ID} is not loaded`);
  return extension.isActive ? extension.exports : extension.activate();
}

/** Polls `probe` until it returns something truthy, or fails with `what` after `timeoutMs`. */
export async function waitFor<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
      last = value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Texts of the chat messages the extension holds for the current room. */
export function messageTexts(api: ChatRoomApi): string[] {
  return (api.session()?.entries ?? []).flatMap((entry) => (entry.kind === 'message' ? [entry.text] : []));
}

export function countOf<T>(items: T[], item: T): number {
  return items.filter((candidate) => candidate === item).length;
}

/**
 * Registers, in the calling `describe`, what every feature suite does after
 * each test: leave every conversation the window holds, then run the test's cleanups,
 * newest first. Returns the list the tests push their cleanups onto.
 */
export function leaveAndCleanUpAfterEach(): (() => unknown)[] {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    // A window may hold several conversations (protocol 2): every one is left, so none outlives its test's server.
    const api = await chatRoomApi();
    for (let left = 0; left < 20 && api.session(); left++) await vscode.commands.executeCommand('chatRoom.leave');
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  return cleanups;
}

/** Sends `text` as the panel would, and waits until the server has acknowledged it and it shows. */
export async function sendFromPanel(api: ChatRoomApi, text: string): Promise<void> {
  api.postFromPanel({ type: 'send', text, requestId: 0 });
  await waitFor(`"${text}" to be acknowledged`, () => api.session()?.pending.length === 0 && messageTexts(api).includes(text));
}
