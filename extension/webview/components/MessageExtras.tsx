import { useContext, useState } from 'preact/hooks';
import type { MessageEntry, ReactionView } from '../../../shared/webviewMessages';
import { Icon } from './Icon';
import { V2Context } from './v2Context';

/** The emoji the small picker offers; any other comes from a reaction someone already made. */
export const PICKER_EMOJI = ['👍', '❤️', '😄', '🎉', '😮', '😢', '👀', '🚀'] as const;

/** A reply's quote of the message it answers; a click goes to the original. */
export function ReplyQuote({ entry }: { entry: MessageEntry }) {
  const { post } = useContext(V2Context);
  if (entry.replyTo === undefined) return null;
  const target = entry.replyTo;
  return (
    <button type="button" class="reply-quote" data-reply-to={String(target)} title="Go to the message this answers" onClick={() => post({ type: 'jumpTo', seq: target })}>
      <Icon name="reply" />
      <span class="reply-from">{entry.replyToFrom ?? 'a message'}</span>
      {entry.replyToText !== undefined && <span class="reply-text">{entry.replyToText}</span>}
    </button>
  );
}

/** Under a message: "(edited)", its reactions, and what the person can do with it (reply, react, edit, delete). */
export function MessageExtras({ entry, isPending }: { entry: MessageEntry; isPending: boolean }) {
  const { enabled, post, dispatch } = useContext(V2Context);
  const [picking, setPicking] = useState(false);
  if (!enabled || entry.seq <= 0) return entry.edited ? <span class="edited">(edited)</span> : null;
  const react = (emoji: string, add: boolean) => {
    setPicking(false);
    post({ type: 'react', seq: entry.seq, emoji, add });
  };
  return (
    <div class="message-extras">
      {entry.edited && <span class="edited">(edited)</span>}
      {(entry.reactions?.length ?? 0) > 0 && (
        <div class="reactions" role="group" aria-label="Reactions">
          {entry.reactions!.map((reaction) => (
            <ReactionChip key={reaction.emoji} reaction={reaction} onToggle={() => react(reaction.emoji, !reaction.mine)} />
          ))}
        </div>
      )}
      {!isPending && (
        <div class="message-actions">
          <button type="button" class="icon-button reply-button" title="Reply" aria-label="Reply" onClick={() => dispatch({ type: 'reply', seq: entry.seq, from: entry.from, text: entry.text.slice(0, 140) })}>
            <Icon name="reply" />
          </button>
          <button type="button" class="icon-button react-button" title="Add a reaction" aria-label="Add a reaction" aria-expanded={picking} onClick={() => setPicking(!picking)}>
            <Icon name="react" />
          </button>
          {entry.mine && (
            <button type="button" class="icon-button edit-button" title="Edit" aria-label="Edit" onClick={() => dispatch({ type: 'edit', seq: entry.seq })}>
              <Icon name="edit" />
            </button>
          )}
          {entry.mine && (
            <button type="button" class="icon-button delete-button" title="Delete" aria-label="Delete" onClick={() => post({ type: 'delete', seq: entry.seq })}>
              <Icon name="delete" />
            </button>
          )}
        </div>
      )}
      {picking && (
        <div class="emoji-picker" role="menu" aria-label="Pick a reaction">
          {PICKER_EMOJI.map((emoji) => {
            const mine = entry.reactions?.some((reaction) => reaction.emoji === emoji && reaction.mine) ?? false;
            return (
              <button key={emoji} type="button" role="menuitem" class="emoji" aria-label={`React with ${emoji}`} onClick={() => react(emoji, !mine)}>
                {emoji}
              </button>
            );
          })}
        </div>
      )}
    </div>
  );
}

function ReactionChip({ reaction, onToggle }: { reaction: ReactionView; onToggle(): void }) {
  const more = reaction.count - reaction.names.length;
  const who = reaction.names.join(', ') + (more > 0 ? ` and ${more} more` : '');
  return (
    <button type="button" class={`reaction${reaction.mine ? ' mine' : ''}`} title={who} aria-pressed={reaction.mine} aria-label={`${reaction.emoji} ${reaction.count}: ${who}`} data-emoji={reaction.emoji} onClick={onToggle}>
      <span class="reaction-emoji">{reaction.emoji}</span>
      <span class="reaction-count">{String(reaction.count)}</span>
    </button>
  );
}
