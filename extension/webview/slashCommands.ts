/**
 * Slash commands typed in the message box: `/join room`, `/leave`, `/dm
 * name`, `/me action`, `/topic text`, `/search text`, `/kick name`. Each
 * becomes one message to the host, but `/me`, which becomes the text to
 * send; anything else starting with `/` is sent as it is.
 */
import type { Features, WebviewToHost } from '../../shared/webviewMessages';

export type SlashOutcome = { message: WebviewToHost } | { text: string } | { problem: string } | undefined;

export const SLASH_COMMANDS = ['/join', '/leave', '/dm', '/me', '/topic', '/search', '/kick'] as const;

export function slashCommand(text: string, features: Features, me: string | undefined): SlashOutcome {
  const match = /^\/([a-z]+)(?:\s+([\s\S]*))?$/.exec(text.trim());
  if (!match) return undefined;
  const [, name, rest = ''] = match;
  const argument = rest.trim();
  const needsV2 = (what: string): SlashOutcome => ({ problem: `${what} needs a server that speaks protocol 2.` });
  switch (name) {
    case 'join':
      return argument ? { message: { type: 'joinRoom', room: argument.replace(/^#/, '') } } : { problem: 'Say which room: /join room' };
    case 'leave':
      return { message: { type: 'leaveConversation', key: '' } };
    case 'dm':
      if (!features.v2) return needsV2('A direct message');
      return argument ? { message: { type: 'openDm', name: argument.replace(/^@/, '') } } : { problem: 'Say with whom: /dm name' };
    case 'me':
      return argument ? { text: `_${me ?? 'I'} ${argument}_` } : { problem: 'Say what you do: /me waves' };
    case 'topic':
      if (!features.v2) return needsV2('A topic');
      return { message: { type: 'setTopic', text: argument } };
    case 'search':
      if (!features.v2) return needsV2('Search');
      return argument.length >= 2 ? { message: { type: 'search', text: argument } } : { problem: 'Search for at least two characters: /search text' };
    case 'kick':
      if (!features.v2) return needsV2('Removing someone');
      return argument ? { message: { type: 'kick', name: argument.replace(/^@/, '') } } : { problem: 'Say whom: /kick name' };
    default:
      return undefined;
  }
}
