/**
 * Everything the extension keeps between windows and reloads, each under one
 * key named here and nowhere else, with typed accessors:
 *
 * - global state (the installation): the client id, the outboxes, the last
 *   join (Join Room's defaults) and the pinned certificates;
 * - workspace state (this window): the room it is in, and the message-box draft;
 * - Secret Storage: the token of each server joined, the identity key of
 *   each name on each v2 server, and the token of the server this
 *   installation runs.
 *
 * It imports only `vscode`'s types, so the chat client, which runs in plain
 * Node too, keeps its outbox through {@link storedOutboxes} on any
 * Memento-like store.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type * as vscode from 'vscode';
import { formatAddress, MAX_ADDRESSES, type ServerAddress } from './address';
import type { OutboxEntry, OutboxStorage } from './client/outbox';
import { nameKey } from '../shared/names';

const CLIENT_ID_KEY = 'chatRoom.clientId';
const OUTBOXES_KEY = 'chatRoom.outbox.v1';
const LAST_JOIN_KEY = 'chatRoom.lastJoin';
/** Certificate fingerprints trusted per address (not secrets: any client can see a server's certificate). */
const PINS_KEY = 'chatRoom.pinnedCertificates';
/**
 * The room this window is in (workspace state: per window, unlike the
 * installation-wide global state), so a reload rejoins it and a Leave stays left.
 */
const CURRENT_ROOM_KEY = 'chatRoom.currentRoom';
const DRAFT_KEY = 'chatRoom.draft';
const SERVER_TOKEN_KEY = 'chatRoom.serverToken';
const ROOM_TOKEN_KEY_PREFIX = 'chatRoom.token:';
/** A name's identity key on a v2 server (Secret Storage): the only proof that the name is ours there. */
const IDENTITY_KEY_PREFIX = 'chatRoom.identityKey:';

/** Drafts longer than this are not kept (a pasted log is not worth a storage write per keystroke). */
const MAX_KEPT_DRAFT_CHARS = 64 * 1024;

/** The part of `vscode.Memento` a store needs. */
export interface KeyValueStore {
  get<T>(key: string): T | undefined;
  update(key: string, value: unknown): PromiseLike<void>;
}

/** What Join Room remembers of a join, and what a window rejoins after a reload. */
export interface RememberedJoin {
  host: string;
  port: number;
  name: string;
  room: string;
  /** A cluster's other servers, as Join Room was given them after the first. */
  alternates?: ServerAddress[];
}

/** The join as it is stored: its own fields only, and alternates that are addresses. */
function keptJoin(join: RememberedJoin): RememberedJoin {
  const alternates = (Array.isArray(join.alternates) ? join.alternates : [])
    .filter((address) => typeof address?.host === 'string' && Number.isInteger(address.port))
    .slice(0, MAX_ADDRESSES - 1)
    .map(({ host, port }) => ({ host, port }));
  return { host: join.host, port: join.port, name: join.name, room: join.room, ...(alternates.length > 0 ? { alternates } : {}) };
}

/** Every seat's outbox in one record of `store`. */
export function storedOutboxes(store: KeyValueStore): OutboxStorage {
  const readAll = (): Record<string, OutboxEntry[]> => {
    const stored = store.get<Record<string, OutboxEntry[]>>(OUTBOXES_KEY);
    return typeof stored === 'object' && stored !== null ? stored : {};
  };
  return {
    load: (key) => {
      const entries = readAll()[key];
      return Array.isArray(entries) ? entries : [];
    },
    save: (key, entries) => {
      // Read, change our key, write: another window may keep its own room's outbox here.
      const all = readAll();
      if (entries.length === 0) delete all[key];
      else all[key] = [...entries];
      void store.update(OUTBOXES_KEY, all);
    },
  };
}

export class StoredState {
  constructor(
    private readonly globalState: vscode.Memento,
    private readonly workspaceState: vscode.Memento,
    private readonly secrets: vscode.SecretStorage,
  ) {}

  static of(context: vscode.ExtensionContext): StoredState {
    return new StoredState(context.globalState, context.workspaceState, context.secrets);
  }

  /** The stable id of this installation, sent in every hello; made on first use. */
  installationClientId(): string {
    let clientId = this.globalState.get<string>(CLIENT_ID_KEY);
    if (!clientId) {
      clientId = randomUUID();
      void this.globalState.update(CLIENT_ID_KEY, clientId);
    }
    return clientId;
  }

  get outboxes(): OutboxStorage {
    return storedOutboxes(this.globalState);
  }

  lastJoin(): RememberedJoin | undefined {
    const join = this.globalState.get<RememberedJoin>(LAST_JOIN_KEY);
    return join && keptJoin(join);
  }

  rememberLastJoin(join: RememberedJoin): Thenable<void> {
    return this.globalState.update(LAST_JOIN_KEY, keptJoin(join));
  }

  /** The room this window was in, unless it was left. */
  currentRoom(): RememberedJoin | undefined {
    const join = this.workspaceState.get<RememberedJoin>(CURRENT_ROOM_KEY);
    return join && keptJoin(join);
  }

  rememberCurrentRoom(join: RememberedJoin | undefined): Thenable<void> {
    return this.workspaceState.update(CURRENT_ROOM_KEY, join && keptJoin(join));
  }

  /** The message-box draft this window kept. */
  draft(): string | undefined {
    return this.workspaceState.get<string>(DRAFT_KEY);
  }

  keepDraft(text: string): void {
    if (text.length <= MAX_KEPT_DRAFT_CHARS) void this.workspaceState.update(DRAFT_KEY, text || undefined);
  }

  pinnedFingerprint(host: string, port: number): string | undefined {
    return this.globalState.get<Record<string, string>>(PINS_KEY)?.[formatAddress({ host, port })];
  }

  async pinFingerprint(host: string, port: number, fingerprint: string): Promise<void> {
    const pins = { ...this.globalState.get<Record<string, string>>(PINS_KEY) };
    pins[formatAddress({ host, port })] = fingerprint;
    await this.globalState.update(PINS_KEY, pins);
  }

  /** The token a server asked for, kept per address. */
  roomToken(host: string, port: number): Thenable<string | undefined> {
    return this.secrets.get(roomTokenKey(host, port));
  }

  storeRoomToken(host: string, port: number, token: string): Thenable<void> {
    return this.secrets.store(roomTokenKey(host, port), token);
  }

  /** What was remembered for an address: its token and its pinned certificate, to rejoin without asking. */
  async rememberedCredentials(host: string, port: number): Promise<{ token?: string; fingerprint?: string }> {
    const token = await this.roomToken(host, port);
    const fingerprint = this.pinnedFingerprint(host, port);
    return { ...(token ? { token } : {}), ...(fingerprint ? { fingerprint } : {}) };
  }

  /** The key that keeps `name` ours on the v2 server at this address, if it was given one. */
  identityKey(host: string, port: number, name: string): Thenable<string | undefined> {
    return this.secrets.get(identityKeyKey(host, port, name));
  }

  storeIdentityKey(host: string, port: number, name: string, key: string): Thenable<void> {
    return this.secrets.store(identityKeyKey(host, port, name), key);
  }

  /** The token of the server this installation runs, if one was made. */
  serverToken(): Thenable<string | undefined> {
    return this.secrets.get(SERVER_TOKEN_KEY);
  }

  /** The token of the server this installation runs, made (256 bits) the first time it is needed. */
  async serverTokenOrNew(): Promise<string> {
    let token = await this.secrets.get(SERVER_TOKEN_KEY);
    if (!token) {
      token = randomBytes(32).toString('base64url');
      await this.secrets.store(SERVER_TOKEN_KEY, token);
    }
    return token;
  }
}

function identityKeyKey(host: string, port: number, name: string): string {
  return `${IDENTITY_KEY_PREFIX}${formatAddress({ host, port })}/${nameKey(name)}`;
}

function roomTokenKey(host: string, port: number): string {
  return `${ROOM_TOKEN_KEY_PREFIX}${formatAddress({ host, port })}`;
}
