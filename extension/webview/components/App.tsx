import { useLayoutEffect, useState } from 'preact/hooks';
import type { WebviewToHost } from '../../../shared/webviewMessages';
import { activeConversation, type PanelState, type Store } from '../store';
import { Composer } from './Composer';
import { ConnectionBar } from './ConnectionBar';
import { Members } from './Members';
import { MessageList } from './MessageList';

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
  const { status, composer } = state;
  return (
    <div id="app" class="app">
      <header class="topbar">
        <h1 id="room-title" class="room-title">
          {status.room ? `# ${status.room}` : 'Chat Room'}
        </h1>
        <ConnectionBar connection={status.connection} me={status.me} serverOffer={status.serverOffer} post={post} />
      </header>
      <div class="main">
        <MessageList
          conversation={activeConversation(state)}
          me={status.me}
          newMessagesMarker={state.newMessagesMarker}
          post={post}
          onNewMessagesMarker={(visible) => store.dispatch({ type: 'newMessagesMarker', visible })}
          onMarkerClicked={() => store.dispatch({ type: 'focusInput' })}
        />
        <Members members={status.members} memberCount={status.memberCount} me={status.me} />
      </div>
      <Composer
        composer={composer}
        inRoom={status.inRoom}
        maxTextBytes={state.maxTextBytes}
        completionSources={{ members: status.members, rooms: knownRooms(state), me: status.me }}
        onType={(text) => store.dispatch({ type: 'typed', text })}
        onSend={send}
      />
    </div>
  );
}
