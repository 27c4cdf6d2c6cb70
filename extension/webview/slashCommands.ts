/**
 * What the slash commands typed in the message box do (their names and
 * arguments are defined once, in shared/slashCommands.ts, which the
 * completion list reads too). Each becomes one message to the host, but
 * `/me`, which becomes the text to send; a name we do not know is sent as
 * text, as it was typed.
 */
import { parseSlashCommand, type SlashCommandName } from '../../shared/slashCommands';
import type { Features, WebviewToHost } from '../../shared/webviewMessages';

export type SlashOutcome = { message: WebviewToHost } | { text: string } | { problem: string } | undefined;

const needsV2 = (what: string): SlashOutcome => ({ problem: `${what} needs a server that speaks protocol 2.` });

/** One handler per command: a command added to the shared list without one here does not compile. */
const HANDLERS: Record<SlashCommandName, (argument: string, features: Features, me: string | undefined) => SlashOutcome> = {
  join: (room) => (room ? { message: { type: 'joinRoom', room: room.replace(/^#/, '') } } : { problem: 'Say which room: /join room' }),
  leave: () => ({ message: { type: 'leaveConversation', key: '' } }),
  dm: (name, features) => (!features.v2 ? needsV2('A direct message') : name ? { message: { type: 'openDm', name: name.replace(/^@/, '') } } : { problem: 'Say with whom: /dm name' }),
  me: (action, _features, me) => (action ? { text: `_${me ?? 'I'} ${action}_` } : { problem: 'Say what you do: /me waves' }),
  topic: (text, features) => (!features.v2 ? needsV2('A topic') : { message: { type: 'setTopic', text } }),
  search: (text, features) =>
    !features.v2 ? needsV2('Search') : text.length >= 2 ? { message: { type: 'search', text } } : { problem: 'Search for at least two characters: /search text' },
  kick: (name, features) => (!features.v2 ? needsV2('Removing someone') : name ? { message: { type: 'kick', name: name.replace(/^@/, '') } } : { problem: 'Say whom: /kick name' }),
};

export function slashCommand(text: string, features: Features, me: string | undefined): SlashOutcome {
  const typed = parseSlashCommand(text.trim());
  if (!typed?.command) return undefined;
  return HANDLERS[typed.command.name](typed.argument.trim(), features, me);
}
