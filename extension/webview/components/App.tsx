import { useLayoutEffect, useState } from 'preact/hooks';
import type { WebviewToHost } from '../../../shared/webviewMessages';
import { activeConversation, type PanelState, type Store } from '../store';
import type { V2Event } from '../v2State';
import { Composer } from './Composer';
import { ComposerExtras, SearchResults } from './ComposerExtras';
import { ConnectionBar } from './ConnectionBar';
import { Conversations } from './Conversations';
import { Members } from './Members';
import { MessageList } from './MessageList';
import { V2Context } from './v2Context';
import { Welcome } from './Welcome';

interface Props {
  store: Store;
  post(message: WebviewToHost): void;
  send(): void;
}

/** The rooms `#` completes: those the panel holds a conversation for. */
function knownRooms(state: PanelState): string[] {
  return [...Object.keys(state.conversations), state.status.room ?? ''].filter((room) => room !== '');
}

/** The whole panel, drawn from the store's one state object. */
export function App({ store, post, send }: Props) {
  const [state, setState] = useState(store.state);
  useLayoutEffect(() => store.subscribe(() => setState(store.state)), [store]);
  const { status, composer, v2 } = state;
  const conversation = activeConversation(state);
  // Nothing joined, nothing left behind: a welcome, not an error.
  const firstVisit = v2.conversations.length === 0 && status.connection.kind !== 'connecting' && !status.inRoom && conversation.items.length === 0 && conversation.pending.length === 0 && status.connection.kind !== 'reconnecting' && !(status.connection.kind === 'disconnected' && status.connection.reason.startsWith('You left'));
  const dispatchV2 = (event: V2Event) => store.dispatch({ type: 'v2', event });
  return (
    <V2Context.Provider value={{ enabled: v2.features.v2, post, dispatch: dispatchV2 }}>
      <div id="app" class="app">
        <header class="topbar">
          <h1 id="room-title" class="room-title" title={v2.conversations.find((item) => item.key === v2.activeKey)?.topic || undefined}>
            {status.room ? `${v2.conversations.find((item) => item.key === v2.activeKey)?.kind === 'dm' ? '@' : '#'} ${status.room}` : 'Chat Room'}
          </h1>
          {!firstVisit && <ConnectionBar connection={status.connection} me={status.me} serverOffer={status.serverOffer} post={post} />}
        </header>
        {firstVisit ? (
          <Welcome post={post} />
        ) : (
          <div class="main">
            {v2.conversations.length > 0 && <Conversations conversations={v2.conversations} activeKey={v2.activeKey} v2={v2.features.v2} post={post} />}
            <div class="conversation-column">
              {v2.search && <SearchResults search={v2.search} post={post} dispatch={dispatchV2} />}
              <MessageList
                conversation={conversation}
                me={status.me}
                newMessagesMarker={state.newMessagesMarker}
                post={post}
                onNewMessagesMarker={(visible) => store.dispatch({ type: 'newMessagesMarker', visible })}
                onMarkerClicked={() => store.dispatch({ type: 'focusInput' })}
              />
            </div>
            <Members members={status.members} memberCount={status.memberCount} me={status.me} onOpenDm={v2.features.v2 ? (name) => post({ type: 'openDm', name }) : undefined} />
          </div>
        )}
        {!firstVisit && <ComposerExtras v2={v2} dispatch={dispatchV2} />}
        {!firstVisit && (
          <Composer
            composer={composer}
            inRoom={status.inRoom}
            maxTextBytes={state.maxTextBytes}
            completionSources={{ members: status.members, rooms: knownRooms(state), me: status.me }}
            onType={(text) => store.dispatch({ type: 'typed', text })}
            onSend={send}
          />
        )}
      </div>
    </V2Context.Provider>
  );
}
