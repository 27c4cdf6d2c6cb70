import type { MessageEntry, WebviewToHost } from '../../../shared/webviewMessages';
import type { V2Event, V2State } from '../v2State';
import { Icon } from './Icon';

/** Above the message box: who is typing, and the message being answered or edited (Escape or × lets it go). */
export function ComposerExtras({ v2, dispatch }: { v2: V2State; dispatch(event: V2Event): void }) {
  return (
    <div class="composer-extras">
      <div id="typing" class="typing" aria-live="polite">
        {typingText(v2.typing)}
      </div>
      {(v2.replyTo || v2.editing) && (
        <div id="compose-banner" class="compose-banner">
          <Icon name={v2.editing ? 'edit' : 'reply'} />
          <span>{v2.editing ? 'Editing your message (Enter saves, Escape cancels)' : `Replying to ${v2.replyTo!.from}: ${v2.replyTo!.text}`}</span>
          <button type="button" class="icon-button" aria-label="Cancel" title="Cancel" onClick={() => dispatch({ type: 'cancelCompose' })}>
            <Icon name="close" />
          </button>
        </div>
      )}
    </div>
  );
}

export function typingText(names: string[]): string {
  if (names.length === 0) return '';
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  return `${names.length} people are typing…`;
}

/** `/search` results: each hit a button that goes to the message. */
export function SearchResults({ search, post, dispatch }: { search: { query: string; hits: MessageEntry[]; error?: string }; post(message: WebviewToHost): void; dispatch(event: V2Event): void }) {
  return (
    <section id="search-results" class="search-results" aria-label={`Search results for ${search.query}`}>
      <div class="search-header">
        <span>{search.error ? `Search failed: ${search.error}` : `${search.hits.length} result${search.hits.length === 1 ? '' : 's'} for “${search.query}”`}</span>
        <button type="button" class="icon-button" aria-label="Close search" title="Close search" onClick={() => dispatch({ type: 'closeSearch' })}>
          <Icon name="close" />
        </button>
      </div>
      <ul>
        {search.hits.map((hit) => (
          <li key={hit.seq}>
            <button type="button" class="search-hit" data-seq={String(hit.seq)} onClick={() => post({ type: 'jumpTo', seq: hit.seq })}>
              <span class="from">{hit.from}</span> <span class="hit-text">{hit.text.slice(0, 200)}</span>
            </button>
          </li>
        ))}
      </ul>
    </section>
  );
}
