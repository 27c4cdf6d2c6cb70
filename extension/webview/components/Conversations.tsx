import type { ConversationView, WebviewToHost } from '../../../shared/webviewMessages';
import { Icon } from './Icon';

interface Props {
  conversations: ConversationView[];
  activeKey: string;
  /** The server speaks protocol 2: rooms can be browsed and joined beside the others. */
  v2: boolean;
  post(message: WebviewToHost): void;
}

/**
 * The rooms and direct messages of this window, each with its unread and
 * mention counts and its topic on hover. A click shows one; the others stay
 * joined.
 */
export function Conversations({ conversations, activeKey, v2, post }: Props) {
  return (
    <nav class="conversations" aria-labelledby="conversations-heading">
      <div class="conversations-header">
        <h2 id="conversations-heading" class="conversations-heading">
          Conversations
        </h2>
        <button id="browse-rooms" type="button" class="icon-button" title={v2 ? 'Browse or join rooms' : 'Join a room'} aria-label={v2 ? 'Browse or join rooms' : 'Join a room'} onClick={() => post(v2 ? { type: 'browseRooms' } : { type: 'join' })}>
          <Icon name="addRoom" />
        </button>
      </div>
      <ul id="conversation-list" class="conversation-list">
        {conversations.map((conversation) => {
          const active = conversation.key === activeKey;
          const label = `${conversation.kind === 'dm' ? '@' : '#'} ${conversation.title}`;
          return (
            <li key={conversation.key} class={`conversation-item${active ? ' active' : ''}${conversation.unread > 0 ? ' has-unread' : ''}`} data-key={conversation.key} data-title={conversation.title}>
              <button
                type="button"
                class="conversation-name"
                title={conversation.topic ? `${label}: ${conversation.topic}` : label}
                aria-current={active ? 'true' : undefined}
                onClick={() => post({ type: 'switchConversation', key: conversation.key })}
              >
                <span class="conversation-title">{label}</span>
                {conversation.mentions > 0 && <span class="mention-count" title={`${conversation.mentions} mention${conversation.mentions === 1 ? '' : 's'}`}>{`@${conversation.mentions}`}</span>}
                {conversation.unread > 0 && <span class="unread-count" title={`${conversation.unread} unread`}>{String(conversation.unread)}</span>}
              </button>
              <button type="button" class="icon-button leave-conversation" title={`Leave ${conversation.title}`} aria-label={`Leave ${conversation.title}`} onClick={() => post({ type: 'leaveConversation', key: conversation.key })}>
                <Icon name="close" />
              </button>
            </li>
          );
        })}
      </ul>
    </nav>
  );
}
