import { useEffect, useLayoutEffect, useMemo, useRef, useState } from 'preact/hooks';
import type { MessageEntry, PendingView, WebviewToHost } from '../../../shared/webviewMessages';
import { codeOfBlock, COPIED_LABEL, COPY_LABEL, isWebLink, pathReferenceOf } from '../markdown';
import type { Conversation, PresenceLine, TimelineItem } from '../store';
import { clock, dateAndTime, layoutTimeline, type Row } from '../timeline';
import { Icon } from './Icon';
import { MessageBody } from './MessageBody';
import { MessageExtras, ReplyQuote } from './MessageExtras';

interface Props {
  conversation: Conversation;
  me: string | undefined;
  newMessagesMarker: boolean;
  post(message: WebviewToHost): void;
  onNewMessagesMarker(visible: boolean): void;
  onMarkerClicked(): void;
}

/**
 * A live region that announces new messages: a `log`, as the list was before
 * it had components (Preact's types allow only list roles on an `ol`).
 */
const LIVE_LOG = { role: 'log' } as Record<string, string>;

/** Closer to the bottom than this counts as reading the newest messages. */
const NEAR_BOTTOM_PX = 48;
/** Closer to the top than this draws the next rows above. */
const NEAR_TOP_PX = 300;
/**
 * Rows drawn at first (a screenful), and added above each time the person
 * scrolls near the top, or at once after the first paint when they do not
 * fill the screen. New messages add theirs below.
 * A room may keep 10,000 messages; drawing them all (each through Markdown
 * and the sanitiser) would take seconds, and nobody sees more than a screen.
 */
export const FIRST_ROWS = 40;
export const ROWS_PER_PAGE = 100;

/**
 * The conversation: messages, folded arrivals and departures, notices, and
 * the outbox at the bottom. It stays at the bottom while the person reads
 * the newest messages; when others write below what is on screen, it shows
 * the "New messages" marker instead of moving.
 */
export function MessageList({ conversation, me, newMessagesMarker, post, onNewMessagesMarker, onMarkerClicked }: Props) {
  const list = useRef<HTMLOListElement>(null);
  // Where the person was before this render changed the list.
  const wasNearBottom = useRef(true);
  if (list.current) wasNearBottom.current = isNearBottom(list.current);

  const { lastAppend, unreadAfter } = conversation;
  const rows = useMemo(() => layoutTimeline(conversation.items, { me, unreadAfter, now: Date.now() }), [conversation.items, me, unreadAfter]);
  // Only the newest rows are drawn, from the first drawn row down. That row is held by its key, so new
  // messages below add rows instead of pushing old ones out over the reader's head; scrolling up moves it.
  const firstDrawn = useRef<string | undefined>(undefined);
  const redrawSeen = useRef(-1);
  if (lastAppend.redraw && redrawSeen.current !== lastAppend.serial) {
    // A fresh snapshot starts again from the newest rows.
    redrawSeen.current = lastAppend.serial;
    firstDrawn.current = undefined;
  }
  let start = firstDrawn.current === undefined ? -1 : rows.findIndex((row) => row.key === firstDrawn.current);
  if (start < 0) start = Math.max(0, rows.length - FIRST_ROWS);
  firstDrawn.current = rows[start]?.key;
  const shownRows = start > 0 ? rows.slice(start) : rows;
  const hiddenAbove = start;
  const [drawnMore, setDrawnMore] = useState(0);
  const heightBeforeMore = useRef<number | undefined>(undefined);
  const drawMore = () => {
    if (hiddenAbove === 0 || heightBeforeMore.current !== undefined || !list.current) return;
    heightBeforeMore.current = list.current.scrollHeight;
    firstDrawn.current = rows[Math.max(0, start - ROWS_PER_PAGE)].key;
    setDrawnMore((count) => count + 1);
  };
  useLayoutEffect(() => {
    const element = list.current;
    if (!element || heightBeforeMore.current === undefined) return;
    element.scrollTop += element.scrollHeight - heightBeforeMore.current;
    heightBeforeMore.current = undefined;
  }, [drawnMore]);
  // Once painted: a screen the drawn rows do not fill (a tall panel, short messages) gets more at once.
  useEffect(() => {
    if (list.current && list.current.scrollTop < NEAR_TOP_PX) drawMore();
  });

  useLayoutEffect(() => {
    const element = list.current;
    if (!element) return;
    if (lastAppend.redraw || lastAppend.mineWrote || wasNearBottom.current) {
      element.scrollTop = element.scrollHeight;
      onNewMessagesMarker(false);
    } else if (lastAppend.othersWrote) {
      onNewMessagesMarker(true);
    }
  }, [lastAppend.serial]);

  const pendingIds = new Set(conversation.pending.map((entry) => entry.id));
  const shownIds = new Set(conversation.items.flatMap((item) => (item.kind === 'message' && item.entry.id ? [item.entry.id] : [])));

  return (
    <section class="conversation" aria-label="Conversation">
      <ol
        id="messages"
        ref={list}
        class="messages"
        {...LIVE_LOG}
        aria-live="polite"
        aria-relevant="additions"
        aria-label="Messages"
        tabIndex={0}
        onScroll={() => {
          if (!list.current) return;
          if (isNearBottom(list.current)) onNewMessagesMarker(false);
          if (list.current.scrollTop < NEAR_TOP_PX) drawMore();
        }}
        onClick={(event) => onListClick(event, post)}
        // A middle click is a click too, and VS Code's script would otherwise swallow it.
        onAuxClick={(event) => onLinkClick(event, post)}
      >
        {hiddenAbove > 0 && (
          <li class="earlier">
            <button type="button" class="action earlier-button" onClick={drawMore}>
              <Icon name="earlier" />
              {`Show earlier messages (${hiddenAbove.toLocaleString('en-US')})`}
            </button>
          </li>
        )}
        {shownRows.map((row) => (
          <RowItem key={row.key} row={row} pending={pendingIds} />
        ))}
        {/* A pending copy of our own message gives way to the real one. */}
        {conversation.pending
          .filter((entry) => !shownIds.has(entry.id))
          .map((entry) => (
            <PendingItem key={`pending-${entry.id}`} entry={entry} me={me} />
          ))}
      </ol>
      <button
        id="new-messages"
        class="new-messages"
        type="button"
        hidden={!newMessagesMarker}
        onClick={() => {
          if (list.current) list.current.scrollTop = list.current.scrollHeight;
          onMarkerClicked();
        }}
      >
        {'New messages '}
        <Icon name="newMessages" />
      </button>
    </section>
  );
}

function RowItem({ row, pending }: { row: Row; pending: ReadonlySet<string> }) {
  switch (row.kind) {
    case 'message':
      return <Message entry={row.entry} continued={row.continued} mentionsMe={row.mentionsMe} isPending={row.entry.id !== undefined && pending.has(row.entry.id)} />;
    case 'date':
      return (
        <li class="date-separator" role="separator" aria-label={row.label}>
          <span>{row.label}</span>
        </li>
      );
    case 'unreadDivider':
      return (
        <li id="unread-divider" class="unread-divider" role="separator" aria-label="New since you were last here">
          <span>New since you were last here</span>
        </li>
      );
    case 'item':
      return <Item item={row.item} />;
  }
}

function Item({ item }: { item: Exclude<TimelineItem, { kind: 'message' }> }) {
  switch (item.kind) {
    case 'shutdown':
      return (
        <li class="system alert shutdown" role="status">
          <Icon name="alert" />
          {`The server shut down at ${clock(item.ts)}; it took ${item.names.join(', ')} out of the room.`}
        </li>
      );
    case 'outage':
      return (
        <li class="system alert outage">
          <Icon name="alert" />
          {item.endedAt === undefined
            ? `Connection lost at ${clock(item.since)}${item.reason ? ` (${item.reason})` : ''}. Reconnecting…`
            : `Connection lost at ${clock(item.since)}${item.reason ? ` (${item.reason})` : ''}; back at ${clock(item.endedAt)}, after ${duration(item.endedAt - item.since)}.`}
        </li>
      );
    case 'presence':
      return <PresenceRun lines={item.lines} count={item.count} />;
    case 'topic':
      return (
        <li class="system topic">
          <span class="system-text">{item.text}</span> <Time ts={item.ts} />
        </li>
      );
    case 'notice':
      return (
        <li class="system failed">
          <Icon name="notSent" />
          {item.text}
        </li>
      );
  }
}

interface MessageProps {
  entry: MessageEntry;
  isPending: boolean;
  /** Continues a run from the same person: the header is left out, and the time shows on hover. */
  continued?: boolean;
  mentionsMe?: boolean;
  extraClass?: string;
}

function Message({ entry, isPending, continued = false, mentionsMe = false, extraClass = '' }: MessageProps) {
  const classes = ['message', entry.mine ? 'mine' : '', entry.mine && isPending ? 'pending' : '', continued ? 'continued' : '', mentionsMe ? 'mentions-me' : '', extraClass].filter(Boolean).join(' ');
  const sendState = entry.mine && (
    <span class="send-state">
      <Icon name={isPending ? 'sending' : 'sent'} />
      {isPending ? 'sending…' : 'sent'}
    </span>
  );
  return (
    <li class={classes} data-seq={String(entry.seq)} data-from={entry.from} data-id={entry.id}>
      {continued ? (
        <div class="meta continued-meta">
          {/* Read out with the message, though only seen on hover. */}
          <span class="visually-hidden">{entry.mine ? `${entry.from} (you)` : entry.from}</span>
          <Time ts={entry.ts} />
          {sendState}
        </div>
      ) : (
        <div class="meta">
          <span class="from">{entry.mine ? `${entry.from} (you)` : entry.from}</span>
          <Time ts={entry.ts} />
          {sendState}
        </div>
      )}
      <ReplyQuote entry={entry} />
      <MessageBody text={entry.text} />
      <MessageExtras entry={entry} isPending={isPending} />
    </li>
  );
}

function PendingItem({ entry, me }: { entry: PendingView; me: string | undefined }) {
  return <Message entry={{ kind: 'message', seq: 0, from: me ?? 'you', text: entry.text, ts: entry.createdAt, id: entry.id, mine: true }} isPending extraClass="pending-only" />;
}

function PresenceRun({ lines, count }: { lines: PresenceLine[]; count: number }) {
  if (count === 1) {
    return (
      <li class="system presence">
        <span class="system-text">{lines[0].text}</span> <Time ts={lines[0].ts} />
      </li>
    );
  }
  const shown = lines
    .slice(-3)
    .map((line) => line.text)
    .join(', ');
  return (
    <li class="system presence">
      <details>
        <summary>{count > 3 ? `${count} arrivals and departures: … ${shown}` : `${count} arrivals and departures: ${shown}`}</summary>
        <ul>
          {lines.map((line, index) => (
            <li key={index}>
              {line.text} <Time ts={line.ts} />
            </li>
          ))}
        </ul>
      </details>
    </li>
  );
}

function Time({ ts }: { ts: number }) {
  return (
    <time dateTime={new Date(ts).toISOString()} title={dateAndTime(ts)}>
      {clock(ts)}
    </time>
  );
}

function duration(ms: number): string {
  const seconds = Math.max(1, Math.round(ms / 1000));
  if (seconds < 90) return `${seconds} s`;
  const minutes = Math.round(seconds / 60);
  return minutes < 90 ? `${minutes} min` : `${Math.round(minutes / 60)} h`;
}

function isNearBottom(element: HTMLElement): boolean {
  return element.scrollHeight - element.scrollTop - element.clientHeight < NEAR_BOTTOM_PX;
}

function onListClick(event: MouseEvent, post: (message: WebviewToHost) => void): void {
  const target = event.target instanceof Element ? event.target : null;
  const insert = target?.closest<HTMLButtonElement>('button.insert-code');
  if (insert) {
    post({ type: 'insertCode', text: codeOfBlock(insert) });
    return;
  }
  const copy = target?.closest<HTMLButtonElement>('button.copy-code');
  if (copy) {
    post({ type: 'copy', text: codeOfBlock(copy) });
    const label = copy.querySelector('.copy-label');
    if (label) {
      label.textContent = COPIED_LABEL;
      window.setTimeout(() => (label.textContent = COPY_LABEL), 1500);
    }
    return;
  }
  onLinkClick(event, post);
}

/**
 * Links open through the host, once: VS Code's own webview script also opens
 * any link whose click reaches the window, so the click stops here.
 */
function onLinkClick(event: MouseEvent, post: (message: WebviewToHost) => void): void {
  const target = event.target instanceof Element ? event.target : null;
  const anchor = target?.closest<HTMLAnchorElement>('a');
  if (!anchor) return;
  // Never let the webview navigate; the host decides what opens.
  event.preventDefault();
  event.stopPropagation();
  if (event.type === 'auxclick' && event.button !== 1) return;
  const reference = pathReferenceOf(anchor);
  if (reference) {
    post({ type: 'openPath', path: reference.path, line: reference.line });
    return;
  }
  const href = anchor.getAttribute('href') ?? '';
  if (isWebLink(href)) post({ type: 'openLink', href });
}
