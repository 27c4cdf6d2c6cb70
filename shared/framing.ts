/**
 * Turning a byte stream into frames, for both ends of the connection.
 *
 * The splitter does not care how TCP cut the bytes: a frame may arrive a byte
 * at a time or many to a chunk, and a multi-byte character may be cut in
 * half. Bytes are kept as bytes until a whole line is there, and only then
 * decoded, so a split character is never mangled.
 */
import { type ClientFrame, type ErrorCode, ID_MAX_CHARS, type ServerFrame } from './protocol';
import { CLIENT_ARRAY_FIELDS, type ClientFrameV2, type ServerFrameV2 } from './protocolV2';

/** One frame on the wire: its JSON and a newline. */
export function encodeFrame(frame: ServerFrame | ClientFrame | ServerFrameV2 | ClientFrameV2): Buffer {
  return Buffer.from(JSON.stringify(frame) + '\n', 'utf8');
}

const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;

export type LineResult = { kind: 'line'; bytes: Buffer } | { kind: 'overflow'; bytes: number };

/**
 * Splits bytes at `\n` (a trailing `\r` is dropped too, for `nc` and telnet
 * users). A line longer than `maxLineBytes` is reported once as an overflow;
 * after that the splitter refuses further input, because the caller closes
 * the connection.
 */
export class LineSplitter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private overflowed = false;

  constructor(private readonly maxLineBytes: number) {}

  /** Bytes received but not yet part of a whole line. */
  get bufferedBytes(): number {
    return this.pendingBytes;
  }

  push(chunk: Buffer): LineResult[] {
    if (this.overflowed) return [];
    const results: LineResult[] = [];
    let start = 0;
    while (start < chunk.length) {
      const newline = chunk.indexOf(NEWLINE, start);
      const end = newline === -1 ? chunk.length : newline;
      const pieceBytes = end - start;
      if (this.pendingBytes + pieceBytes > this.maxLineBytes) {
        this.overflowed = true;
        results.push({ kind: 'overflow', bytes: this.pendingBytes + pieceBytes });
        this.pending = [];
        this.pendingBytes = 0;
        return results;
      }
      if (newline === -1) {
        this.pending.push(chunk.subarray(start));
        this.pendingBytes += pieceBytes;
        break;
      }
      let line = this.pending.length === 0 ? chunk.subarray(start, end) : Buffer.concat([...this.pending, chunk.subarray(start, end)]);
      this.pending = [];
      this.pendingBytes = 0;
      if (line.length > 0 && line[line.length - 1] === CARRIAGE_RETURN) line = line.subarray(0, line.length - 1);
      results.push({ kind: 'line', bytes: line });
      start = newline + 1;
    }
    return results;
  }

  /** Hands out the unterminated rest as a line (classic clients that send without a newline). */
  takeRest(): Buffer | undefined {
    if (this.pendingBytes === 0) return undefined;
    let rest = Buffer.concat(this.pending);
    this.pending = [];
    this.pendingBytes = 0;
    if (rest[rest.length - 1] === CARRIAGE_RETURN) rest = rest.subarray(0, rest.length - 1);
    return rest;
  }
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Decodes UTF-8, refusing invalid sequences instead of replacing them. */
export function decodeUtf8(bytes: Buffer): string | undefined {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return undefined;
  }
}

export interface FrameProblem {
  code: ErrorCode;
  message: string;
  /** The `say` id the problem is about, when it could be read. */
  id?: string;
}

export type Decoded<T> = { ok: true; frame: T } | { ok: false; problem: FrameProblem };

function problem(code: ErrorCode, message: string, id?: string): { ok: false; problem: FrameProblem } {
  return { ok: false, problem: id === undefined ? { code, message } : { code, message, id } };
}

/** Decodes one line as strict UTF-8 and parses it as a JSON object; `subject` names the sender in the error. */
function parseJsonObjectLine(line: Buffer, subject: string): Decoded<Record<string, unknown>> {
  const text = decodeUtf8(line);
  if (text === undefined) return problem('bad_frame', `${subject} is not valid UTF-8.`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return problem('bad_frame', `${subject} is not valid JSON.`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return problem('bad_frame', `${subject} is not a JSON object.`);
  return { ok: true, frame: value as Record<string, unknown> };
}

/**
 * Parses one line as a JSON object whose values are all primitives. Frames
 * never nest, so any nested value (and so any deeply nested bomb) is refused
 * here, as is a `__proto__` key, before any field is looked at.
 */
export function parseFlatJsonObject(line: Buffer): Decoded<Record<string, unknown>> {
  return parseClientObject(line, NO_ARRAY_FIELDS, false);
}

const NO_ARRAY_FIELDS: Readonly<Record<string, number>> = Object.freeze({});

/**
 * Parses one line of a v2 connection: flat like v1, except that the fields
 * named in CLIENT_ARRAY_FIELDS may be short arrays of strings (nothing nested).
 */
export function parseClientObjectV2(line: Buffer): Decoded<Record<string, unknown>> {
  return parseClientObject(line, CLIENT_ARRAY_FIELDS, true);
}

/** `withId`: a refusal carries the frame's `id` when it has one (v2 answers every frame by its id). */
function parseClientObject(line: Buffer, arrayFields: Readonly<Record<string, number>>, withId: boolean): Decoded<Record<string, unknown>> {
  const parsed = parseJsonObjectLine(line, 'The frame');
  if (!parsed.ok) return parsed;
  const value = parsed.frame;
  const id = withId ? answerableId(value) : undefined;
  for (const key of Object.keys(value)) {
    if (key === '__proto__' || key === 'constructor' || key === 'prototype') {
      return problem('bad_frame', `The key "${key}" is not allowed.`, id);
    }
    const field = value[key];
    if (typeof field !== 'object' || field === null) continue;
    const maxItems = Object.hasOwn(arrayFields, key) ? arrayFields[key] : undefined;
    if (maxItems === undefined) return problem('bad_frame', `The field "${key}" must not be an object or array.`, id);
    if (!Array.isArray(field) || !field.every((item) => typeof item === 'string')) return problem('bad_frame', `The field "${key}" must be an array of strings.`, id);
    if (field.length > maxItems) return problem('bad_frame', `The field "${key}" may hold at most ${maxItems} items.`, id);
  }
  return { ok: true, frame: value };
}

type FieldKind = 'string' | 'number' | 'boolean' | 'strings';

function fieldProblem(raw: Record<string, unknown>, field: string, kind: FieldKind, required: boolean): string | undefined {
  const value = raw[field];
  if (value === undefined) return required ? `The field "${field}" is missing.` : undefined;
  if (kind === 'strings') return Array.isArray(value) ? undefined : `The field "${field}" must be an array of strings.`;
  if (typeof value !== kind) return `The field "${field}" must be a ${kind}.`;
  if (kind === 'number' && !Number.isSafeInteger(value)) return `The field "${field}" must be a whole number.`;
  return undefined;
}

function checkFields(raw: Record<string, unknown>, spec: Record<string, [FieldKind, boolean]>): string | undefined {
  for (const [field, [kind, required]] of Object.entries(spec)) {
    const found = fieldProblem(raw, field, kind, required);
    if (found) return found;
  }
  return undefined;
}

const CLIENT_FIELDS: Record<ClientFrame['type'], Record<string, [FieldKind, boolean]>> = {
  hello: {
    name: ['string', true],
    room: ['string', false],
    clientId: ['string', false],
    token: ['string', false],
    lastSeq: ['number', false],
    resume: ['string', false],
    epoch: ['string', false],
    // A v2 hello names its version and may carry its identity key; the version decides which table reads the rest.
    protocol: ['number', false],
    key: ['string', false],
  },
  say: { id: ['string', true], text: ['string', true] },
  ping: {},
  pong: {},
  bye: {},
};

/** Checks that a parsed object is a client frame the server understands. */
export function validateClientFrame(raw: Record<string, unknown>): Decoded<ClientFrame> {
  const type = raw.type;
  if (typeof type !== 'string') return problem('bad_frame', 'The field "type" is missing.');
  if (!Object.hasOwn(CLIENT_FIELDS, type)) return problem('bad_frame', `Unknown frame type "${type.slice(0, 32)}".`);
  const found = checkFields(raw, CLIENT_FIELDS[type as ClientFrame['type']]);
  const id = typeof raw.id === 'string' ? raw.id : undefined;
  if (found) return problem('bad_frame', found, id);
  return { ok: true, frame: raw as unknown as ClientFrame };
}

const S = ['string', true] as [FieldKind, boolean];
const S_OPTIONAL = ['string', false] as [FieldKind, boolean];
const N = ['number', true] as [FieldKind, boolean];
const N_OPTIONAL = ['number', false] as [FieldKind, boolean];

/** Every v2 client frame and its fields: what a v2 connection's frames are checked against. */
const CLIENT_FIELDS_V2: Record<ClientFrameV2['type'], Record<string, [FieldKind, boolean]>> = {
  hello: { name: S, protocol: N, clientId: S, token: S_OPTIONAL, key: S_OPTIONAL },
  join: { id: S, room: S, lastSeq: N_OPTIONAL, epoch: S_OPTIONAL },
  part: { id: S, room: S },
  say: { id: S, room: S, text: S, replyTo: N_OPTIONAL },
  edit: { id: S, room: S, target: N, text: S },
  delete: { id: S, room: S, target: N },
  react: { id: S, room: S, target: N, emoji: S, add: ['boolean', true] },
  typing: { room: S },
  read: { id: S, room: S, seq: N },
  topic: { id: S, room: S, text: S },
  kick: { id: S, room: S, name: S },
  setOwner: { id: S, room: S, name: S },
  listRooms: { id: S, after: S_OPTIONAL },
  conversations: { id: S, after: S_OPTIONAL },
  listMembers: { id: S, room: S, after: S_OPTIONAL },
  history: { id: S, room: S, before: N, limit: N_OPTIONAL },
  search: { id: S, room: S, text: S, before: N_OPTIONAL },
  openDm: { id: S, with: ['strings', true] },
  releaseName: { id: S },
  ping: {},
  pong: {},
  bye: {},
};

/** The id a v2 refusal carries: the frame's, cut to ID_MAX_CHARS (a longer id is itself refused, with its first characters). */
function answerableId(raw: Record<string, unknown>): string | undefined {
  return typeof raw.id === 'string' ? raw.id.slice(0, ID_MAX_CHARS) : undefined;
}

/** Whether `type` names a frame that only v2 has (a v1 connection answers it with `unsupported`). */
export function isV2OnlyFrameType(type: unknown): boolean {
  return typeof type === 'string' && Object.hasOwn(CLIENT_FIELDS_V2, type) && !Object.hasOwn(CLIENT_FIELDS, type);
}

/** Checks that a parsed object (from parseClientObjectV2) is a v2 client frame. */
export function validateClientFrameV2(raw: Record<string, unknown>): Decoded<ClientFrameV2> {
  const type = raw.type;
  const id = answerableId(raw);
  if (typeof type !== 'string') return problem('bad_frame', 'The field "type" is missing.', id);
  if (!Object.hasOwn(CLIENT_FIELDS_V2, type)) return problem('bad_frame', `Unknown frame type "${type.slice(0, 32)}".`, id);
  const found = checkFields(raw, CLIENT_FIELDS_V2[type as ClientFrameV2['type']]);
  if (found) return problem('bad_frame', found, id);
  return { ok: true, frame: raw as unknown as ClientFrameV2 };
}

/**
 * Parses one line from a v2 server. v2 frames carry arrays and objects (member
 * lists, reactions, history pages), so only the shape every frame shares is
 * checked: an object with a string `type`. Fields are the reader's to check.
 */
export function parseServerFrameV2(line: Buffer): Decoded<ServerFrameV2> {
  const parsed = parseJsonObjectLine(line, 'A frame from the server');
  if (!parsed.ok) return parsed;
  if (typeof parsed.frame.type !== 'string') return problem('bad_frame', 'A frame from the server has no type.');
  return { ok: true, frame: parsed.frame as unknown as ServerFrameV2 };
}

const SERVER_FIELDS: Record<ServerFrame['type'], Record<string, [FieldKind, boolean]>> = {
  welcome: { you: ['string', true], room: ['string', true], seq: ['number', true] },
  message: { seq: ['number', true], room: ['string', true], from: ['string', true], text: ['string', true], ts: ['number', true] },
  joined: { seq: ['number', true], name: ['string', true], ts: ['number', true] },
  left: { seq: ['number', true], name: ['string', true], reason: ['string', true], ts: ['number', true] },
  ack: { id: ['string', true], seq: ['number', true] },
  error: { code: ['string', true], message: ['string', true] },
  ping: {},
  pong: {},
};

/**
 * Parses one line from the server. `welcome.members` is the one array in the
 * protocol, so server frames are parsed with plain JSON and checked by type.
 */
export function parseServerFrame(line: Buffer): Decoded<ServerFrame> {
  const parsed = parseJsonObjectLine(line, 'A frame from the server');
  if (!parsed.ok) return parsed;
  const record = parsed.frame;
  const type = record.type;
  if (typeof type !== 'string' || !Object.hasOwn(SERVER_FIELDS, type)) return problem('bad_frame', 'The server sent an unknown frame type.');
  const found = checkFields(record, SERVER_FIELDS[type as ServerFrame['type']]);
  if (found) return problem('bad_frame', found);
  if (type === 'welcome' && !(Array.isArray(record.members) && record.members.every((m) => typeof m === 'string'))) {
    return problem('bad_frame', 'The welcome has no member list.');
  }
  return { ok: true, frame: record as unknown as ServerFrame };
}

export type ClientFrameResult = { kind: 'frame'; frame: ClientFrame } | { kind: 'problem'; problem: FrameProblem };

/** Bytes in, client frames (or the reason a frame was refused) out: what the server reads. */
export class ClientFrameDecoder {
  private readonly lines: LineSplitter;

  constructor(private readonly maxFrameBytes: number) {
    this.lines = new LineSplitter(maxFrameBytes);
  }

  push(chunk: Buffer): ClientFrameResult[] {
    const results: ClientFrameResult[] = [];
    for (const line of this.lines.push(chunk)) {
      if (line.kind === 'overflow') {
        results.push({
          kind: 'problem',
          problem: { code: 'too_long', message: `A frame may be at most ${this.maxFrameBytes} bytes; ${line.bytes} arrived without a newline.` },
        });
        break;
      }
      if (line.bytes.length === 0) continue;
      const parsed = parseFlatJsonObject(line.bytes);
      if (!parsed.ok) {
        results.push({ kind: 'problem', problem: parsed.problem });
        continue;
      }
      const validated = validateClientFrame(parsed.frame);
      results.push(validated.ok ? { kind: 'frame', frame: validated.frame } : { kind: 'problem', problem: validated.problem });
    }
    return results;
  }
}
