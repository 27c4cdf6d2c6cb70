/**
 * The promises the proof suite checks, written once for the crash test and the
 * soak: what clients were acked and shown must match what the server stored.
 */
import type { RoomEvent } from '../../shared/protocol';
import type { ResumingClient } from './resumingClient';

export type StoredEvent = RoomEvent & { clientId?: string };

export interface HistoryReport {
  storedEvents: number;
  storedMessages: number;
  sent: number;
  acked: number;
  /** Acked messages missing from the history (must be 0). */
  lostAcked: number;
  /** Messages stored more than once (must be 0). */
  duplicates: number;
  /** Sent messages neither stored nor still waiting in their sender's outbox (must be 0). */
  vanished: number;
  /** Acked messages whose stored seq differs from the acked one, or out of the sender's order (must be 0). */
  misordered: number;
  /** Seqs that do not follow the one before by exactly 1 (must be 0). */
  seqGaps: number;
  /** Events a client was shown that differ from the stored one with that seq (must be 0). */
  transcriptMismatches: number;
  problems: string[];
}

export function checkHistory(history: StoredEvent[], clients: ResumingClient[]): HistoryReport {
  const problems: string[] = [];
  const note = (text: string) => {
    if (problems.length < 20) problems.push(text);
  };
  let seqGaps = 0;
  for (let index = 1; index < history.length; index++) {
    if (history[index].seq !== history[index - 1].seq + 1) {
      seqGaps += 1;
      note(`seq ${history[index - 1].seq} is followed by ${history[index].seq}`);
    }
  }
  const bySeq = new Map<number, StoredEvent>();
  const copies = new Map<string, StoredEvent[]>();
  let storedMessages = 0;
  for (const event of history) {
    bySeq.set(event.seq, event);
    if (event.type !== 'message' || event.id === undefined) continue;
    storedMessages += 1;
    const key = `${event.from}\u0000${event.id}`;
    const list = copies.get(key) ?? [];
    list.push(event);
    copies.set(key, list);
  }
  let duplicates = 0;
  for (const [key, list] of copies) {
    if (list.length > 1) {
      duplicates += list.length - 1;
      note(`${key.replace('\u0000', '/')} is stored ${list.length} times (seqs ${list.map((event) => event.seq).join(', ')})`);
    }
  }

  let sent = 0;
  let acked = 0;
  let lostAcked = 0;
  let vanished = 0;
  let misordered = 0;
  let transcriptMismatches = 0;
  for (const client of clients) {
    let previousSeq = 0;
    for (const message of client.sent) {
      sent += 1;
      const stored = copies.get(`${client.name}\u0000${message.id}`);
      if (message.ackedSeq !== undefined) {
        acked += 1;
        if (!stored) {
          lostAcked += 1;
          note(`${client.name}/${message.id} was acked with seq ${message.ackedSeq} but is not stored`);
          continue;
        }
        if (stored[0].seq !== message.ackedSeq) {
          misordered += 1;
          note(`${client.name}/${message.id} was acked with seq ${message.ackedSeq} but stored at ${stored[0].seq}`);
        }
      } else if (!stored && !client.outbox.includes(message)) {
        vanished += 1;
        note(`${client.name}/${message.id} is neither stored nor pending`);
      }
      if (stored) {
        const first = stored[0];
        if (first.type === 'message' && first.text !== message.text) note(`${client.name}/${message.id} is stored with different text`);
        if (stored[0].seq <= previousSeq) {
          misordered += 1;
          note(`${client.name}/${message.id} (seq ${stored[0].seq}) is stored before an earlier message of the same sender (seq ${previousSeq})`);
        }
        previousSeq = stored[0].seq;
      }
    }
    for (const shown of client.transcript) {
      const stored = bySeq.get(shown.seq);
      if (!stored || !sameEvent(shown, stored)) {
        transcriptMismatches += 1;
        note(`${client.name} was shown seq ${shown.seq} as ${describe(shown)}, the history has ${stored ? describe(stored) : 'nothing'}`);
      }
    }
  }
  return { storedEvents: history.length, storedMessages, sent, acked, lostAcked, duplicates, vanished, misordered, seqGaps, transcriptMismatches, problems };
}

function sameEvent(a: RoomEvent, b: RoomEvent): boolean {
  if (a.type !== b.type || a.seq !== b.seq) return false;
  if (a.type === 'message' && b.type === 'message') return a.from === b.from && a.id === b.id && a.text === b.text;
  if (a.type === 'left' && b.type === 'left') return a.name === b.name && a.reason === b.reason;
  if (a.type === 'joined' && b.type === 'joined') return a.name === b.name;
  return false;
}

function describe(event: RoomEvent): string {
  return event.type === 'message' ? `message ${event.from}/${event.id}` : `${event.type} ${event.name}`;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Percentile of a list of numbers (nearest rank). */
export function percentile(values: number[], fraction: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1))];
}
