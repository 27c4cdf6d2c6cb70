/**
 * What the protocol 2 parts of a message (reply quote, reactions, actions)
 * need from the panel, handed down once instead of through every list item.
 */
import { createContext } from 'preact';
import type { WebviewToHost } from '../../../shared/webviewMessages';
import type { V2Event } from '../v2State';

export interface V2Actions {
  /** Replies, edits, reactions and the rest: the conversation speaks protocol 2. */
  enabled: boolean;
  post(message: WebviewToHost): void;
  dispatch(event: V2Event): void;
}

export const V2Context = createContext<V2Actions>({ enabled: false, post: () => undefined, dispatch: () => undefined });
