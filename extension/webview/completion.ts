/**
 * Completion in the message box: `@` completes members' names, `#` room
 * names, and `/` at the start of the message the slash commands
 * (shared/slashCommands.ts). Pure functions over the text and the caret, so
 * the composer only draws the list and moves through it.
 */
import { nameKey } from '../../shared/names';
import { SLASH_COMMANDS, type SlashCommand } from '../../shared/slashCommands';

export type CompletionKind = 'member' | 'room' | 'command';

/** What is being completed: the text from `start` to the caret (`end`) is replaced. */
export interface CompletionQuery {
  kind: CompletionKind;
  start: number;
  end: number;
  /** What was typed after the trigger. */
  typed: string;
}

export interface CompletionItem {
  kind: CompletionKind;
  /** What the list shows. */
  label: string;
  /** What replaces the query. */
  insert: string;
  detail: string;
  /**
   * A command that takes nothing, typed in full (`/leave`): picking it would
   * only add a space, so Enter runs it instead.
   */
  finished?: boolean;
}

export interface CompletionSources {
  members: readonly string[];
  rooms: readonly string[];
  /** Our own name, left out of `@` completion. */
  me: string | undefined;
  commands?: readonly SlashCommand[];
}

/** The most rows the list shows. */
export const MAX_COMPLETIONS = 8;

const MEMBER_QUERY = /(?:^|[\s([{"'])@([^\s@]*)$/u;
const ROOM_QUERY = /(?:^|[\s([{"'])#([^\s#]*)$/u;
const COMMAND_QUERY = /^\/([A-Za-z][\w-]*)?$/;

/** What the caret is completing, if anything. */
export function completionQueryAt(text: string, caret: number): CompletionQuery | undefined {
  const before = text.slice(0, caret);
  const command = COMMAND_QUERY.exec(before);
  if (command) return { kind: 'command', start: 0, end: caret, typed: command[1] ?? '' };
  const member = MEMBER_QUERY.exec(before);
  if (member) return { kind: 'member', start: caret - member[1].length - 1, end: caret, typed: member[1] };
  const room = ROOM_QUERY.exec(before);
  if (room) return { kind: 'room', start: caret - room[1].length - 1, end: caret, typed: room[1] };
  return undefined;
}

/** The choices for a query: names that start with what was typed first, then names that contain it. */
export function completionItems(query: CompletionQuery, sources: CompletionSources): CompletionItem[] {
  switch (query.kind) {
    case 'member': {
      const me = sources.me === undefined ? undefined : nameKey(sources.me);
      const names = sources.members.filter((name) => nameKey(name) !== me);
      return matching(names, query.typed, (name) => name).map((name) => ({ kind: 'member', label: name, insert: `@${name} `, detail: 'member' }));
    }
    case 'room':
      return matching([...new Set(sources.rooms)], query.typed, (room) => room).map((room) => ({ kind: 'room', label: `#${room}`, insert: `#${room} `, detail: 'room' }));
    case 'command':
      return matching(sources.commands ?? SLASH_COMMANDS, query.typed, (command) => command.name).map((command) => ({
        kind: 'command',
        label: `/${command.name}${command.argument ? ` ${command.argument}` : ''}`,
        insert: `/${command.name} `,
        detail: command.ownerOnly ? `${command.description} (room owner)` : command.description,
        ...(!command.argument && command.name === query.typed.toLowerCase() ? { finished: true } : {}),
      }));
  }
}

/** The text with the query replaced by the choice, and where the caret goes. */
export function applyCompletion(text: string, query: CompletionQuery, item: CompletionItem): { text: string; caret: number } {
  const after = text.slice(query.end);
  // The choice ends with a space; one already there is not doubled.
  const insert = after.startsWith(' ') ? item.insert.trimEnd() : item.insert;
  return { text: text.slice(0, query.start) + insert + after, caret: query.start + insert.length + (after.startsWith(' ') ? 1 : 0) };
}

function matching<T>(candidates: readonly T[], typed: string, nameOf: (candidate: T) => string): T[] {
  const wanted = typed.toLowerCase();
  const starts: T[] = [];
  const contains: T[] = [];
  for (const candidate of candidates) {
    const name = nameOf(candidate).toLowerCase();
    if (name.startsWith(wanted)) starts.push(candidate);
    else if (wanted && name.includes(wanted)) contains.push(candidate);
  }
  return [...starts, ...contains].slice(0, MAX_COMPLETIONS);
}
