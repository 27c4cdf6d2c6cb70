/**
 * The slash commands a person can type in the message box, defined once: the
 * panel completes them from here, and whatever carries them out reads the
 * same names. Adding one is adding an entry; its name becomes part of
 * {@link SlashCommandName}, so a handler keyed by name is checked to cover it.
 */

export interface SlashCommand {
  /** Typed after the slash. */
  readonly name: string;
  /** What follows the name, as shown in the completion list (empty: nothing). */
  readonly argument: string;
  readonly description: string;
  /** Only the room's owner may use it; others are still shown it, marked. */
  readonly ownerOnly?: boolean;
}

export const SLASH_COMMANDS = [
  { name: 'join', argument: '#room', description: 'Join a room, keeping the others' },
  { name: 'leave', argument: '', description: 'Leave this conversation' },
  { name: 'dm', argument: 'name', description: 'Start a direct message' },
  { name: 'me', argument: 'action', description: 'Say what you are doing, in the third person' },
  { name: 'topic', argument: 'text', description: "Set the room's topic" },
  { name: 'search', argument: 'text', description: 'Search this conversation' },
  { name: 'kick', argument: 'name', description: 'Remove someone from the room', ownerOnly: true },
] as const satisfies readonly SlashCommand[];

export type SlashCommandName = (typeof SLASH_COMMANDS)[number]['name'];

/** A slash command as typed: its name (known or not) and the rest of the line. */
export interface TypedSlashCommand {
  name: string;
  argument: string;
  /** The definition, when the name is one of ours. */
  command?: SlashCommand & { name: SlashCommandName };
}

/**
 * Reads `/name rest` at the start of a message. `//text` is not a command (it
 * is how a message that starts with a slash is written), nor is a lone `/`.
 */
export function parseSlashCommand(text: string): TypedSlashCommand | undefined {
  const match = /^\/([A-Za-z][\w-]*)(?:\s+([\s\S]*))?$/.exec(text.trimEnd());
  if (!match) return undefined;
  const name = match[1].toLowerCase();
  const command = SLASH_COMMANDS.find((candidate) => candidate.name === name);
  return { name, argument: match[2] ?? '', ...(command ? { command } : {}) };
}
