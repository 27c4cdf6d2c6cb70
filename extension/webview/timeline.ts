/**
 * How the conversation's items are laid out as rows: a run of messages from
 * one person within a few minutes shares one header, a new day starts under a
 * date separator, and a divider marks where the messages that came while the
 * person was away begin. It is a pure function of the store's items, so the
 * list can lay out 10,000 of them cheaply and draw only the rows it shows.
 */
import { mentions } from '../../shared/mentions';
import type { MessageEntry } from '../../shared/webviewMessages';
import type { TimelineItem } from './store';

/** Messages from one person closer together than this share a header. */
export const RUN_GAP_MS = 5 * 60_000;

export type Row =
  | { kind: 'date'; key: string; label: string }
  | { kind: 'unreadDivider'; key: string }
  | {
      kind: 'message';
      key: string;
      entry: MessageEntry;
      /** Continues the run above: no header of its own, its time shows on hover. */
      continued: boolean;
      /** Someone else wrote `@you`. */
      mentionsMe: boolean;
    }
  | { kind: 'item'; key: string; item: Exclude<TimelineItem, { kind: 'message' }> };

export interface LayoutOptions {
  /** The name the server gave us, for mentions. */
  me: string | undefined;
  /** Messages after this sequence number came while the person was away (undefined: no divider). */
  unreadAfter: number | undefined;
  /** Today, for "Today" and "Yesterday" (epoch ms). */
  now: number;
}

export function layoutTimeline(items: readonly TimelineItem[], { me, unreadAfter, now }: LayoutOptions): Row[] {
  const rows: Row[] = [];
  let previousDay = '';
  let previous: MessageEntry | undefined;
  let dividerPlaced = unreadAfter === undefined;
  for (const item of items) {
    const ts = timeOf(item);
    if (ts !== undefined) {
      const day = dayKey(ts);
      if (day !== previousDay) {
        rows.push({ kind: 'date', key: `date-${day}`, label: dayLabel(ts, now) });
        previousDay = day;
        previous = undefined;
      }
    }
    if (item.kind !== 'message') {
      rows.push({ kind: 'item', key: item.key, item });
      // A line between two messages ends the run; joins and leaves stay quiet and do not.
      if (item.kind !== 'presence') previous = undefined;
      continue;
    }
    const { entry } = item;
    if (!dividerPlaced && !entry.mine && entry.seq > (unreadAfter ?? 0)) {
      rows.push({ kind: 'unreadDivider', key: 'unread-divider' });
      dividerPlaced = true;
      previous = undefined;
    }
    const continued = previous !== undefined && previous.from === entry.from && previous.mine === entry.mine && entry.ts - previous.ts >= 0 && entry.ts - previous.ts <= RUN_GAP_MS;
    rows.push({ kind: 'message', key: item.key, entry, continued, mentionsMe: !entry.mine && me !== undefined && mentions(entry.text, me) });
    previous = entry;
  }
  return rows;
}

function timeOf(item: TimelineItem): number | undefined {
  switch (item.kind) {
    case 'message':
      return item.entry.ts;
    case 'presence':
      return item.lines[0]?.ts;
    case 'outage':
      return item.since;
    case 'shutdown':
      return item.ts;
    default:
      return undefined;
  }
}

/** The local calendar day of a time, as a key. */
export function dayKey(ts: number): string {
  const date = new Date(ts);
  return `${date.getFullYear()}-${date.getMonth() + 1}-${date.getDate()}`;
}

// Made once: a formatter costs far more to make than to use, and the list formats many dates.
const DAY_THIS_YEAR = new Intl.DateTimeFormat(undefined, { weekday: 'long', month: 'long', day: 'numeric' });
const DAY_OTHER_YEAR = new Intl.DateTimeFormat(undefined, { weekday: 'long', month: 'long', day: 'numeric', year: 'numeric' });
const CLOCK = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const DATE_AND_TIME = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

export function dayLabel(ts: number, now: number): string {
  if (dayKey(ts) === dayKey(now)) return 'Today';
  const yesterday = new Date(now);
  yesterday.setDate(yesterday.getDate() - 1);
  if (dayKey(ts) === dayKey(yesterday.getTime())) return 'Yesterday';
  return (new Date(ts).getFullYear() === new Date(now).getFullYear() ? DAY_THIS_YEAR : DAY_OTHER_YEAR).format(ts);
}

/** The time of day, as the list shows it beside a message. */
export function clock(ts: number): string {
  return CLOCK.format(ts);
}

/** The date and time, as the list shows it on hover. */
export function dateAndTime(ts: number): string {
  return DATE_AND_TIME.format(ts);
}
