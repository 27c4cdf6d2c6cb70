/**
 * What the panel shows, read from the page itself (not from the store), so
 * the tests that ask through a probe see what a person sees.
 */
import type { PanelView } from '../../shared/webviewMessages';

export function describePanel(document: Document): PanelView {
  const query = (selector: string) => document.querySelector<HTMLElement>(selector);
  const all = (selector: string) => [...document.querySelectorAll<HTMLElement>(selector)];
  const byteCount = query('#byte-count');
  return {
    messages: all('#messages li.message').map((item) => ({
      from: item.dataset.from ?? '',
      text: item.querySelector<HTMLElement>('.body')?.dataset.text ?? '',
      mine: item.classList.contains('mine'),
      state: !item.classList.contains('mine') ? 'received' : item.classList.contains('pending') ? 'pending' : 'sent',
      html: item.querySelector('.body')?.innerHTML ?? '',
    })),
    systemLines: all('#messages li.system').map((item) => item.textContent ?? ''),
    members: all('#member-list li:not(.more-members)').map((item) => item.textContent ?? ''),
    memberCountLabel: query('#members-heading')?.textContent ?? '',
    connectionText: query('#connection')?.textContent ?? '',
    actions: all('#connection button').map((button) => button.textContent ?? ''),
    composerEnabled: !(query('#input') as HTMLTextAreaElement | null)?.disabled,
    composerNotice: query('#composer-notice')?.textContent ?? '',
    byteCounter: !byteCount || byteCount.hidden ? '' : (byteCount.textContent ?? ''),
    pendingTexts: all('#messages li.pending-only .body').map((body) => body.dataset.text ?? ''),
    newMessagesMarkerVisible: !(query('#new-messages')?.hidden ?? true),
    draft: (query('#input') as HTMLTextAreaElement | null)?.value ?? '',
    conversations: all('#conversation-list li').map((item) => ({
      title: item.dataset.title ?? '',
      unread: Number(item.querySelector('.unread-count')?.textContent ?? 0),
      mentions: Number((item.querySelector('.mention-count')?.textContent ?? '@0').slice(1)),
      active: item.classList.contains('active'),
      topic: item.querySelector<HTMLElement>('.conversation-name')?.title ?? '',
    })),
    welcomeActions: all('#welcome button').map((button) => button.textContent ?? ''),
    typingText: query('#typing')?.textContent ?? '',
    extras: all('#messages li.message[data-seq]')
      .filter((item) => item.dataset.seq !== '0')
      .map((item) => ({
        seq: Number(item.dataset.seq),
        replyQuote: item.querySelector('.reply-quote')?.textContent ?? '',
        edited: item.querySelector('.edited') !== null,
        reactions: [...item.querySelectorAll('.reaction')].map((chip) => `${chip.querySelector('.reaction-emoji')?.textContent ?? ''} ${chip.querySelector('.reaction-count')?.textContent ?? ''}`),
      })),
    composeBanner: query('#compose-banner')?.textContent ?? '',
    searchHits: all('#search-results .search-hit .hit-text').map((hit) => hit.textContent ?? ''),
  };
}
