/**
 * A small typed event emitter with the same shape as `vscode.EventEmitter`
 * (`event(listener)` returns a disposable), kept free of `vscode` so the chat
 * client can also run in plain Node (fault tests drive it from outside VS Code).
 */
import { type IDisposable, toDisposable } from '../shared/disposable';

export type Listener<T> = (value: T) => void;
export type Event<T> = (listener: Listener<T>) => IDisposable;

export class Emitter<T> implements IDisposable {
  private listeners = new Set<Listener<T>>();

  readonly event: Event<T> = (listener) => {
    this.listeners.add(listener);
    return toDisposable(() => this.listeners.delete(listener));
  };

  fire(value: T): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(value);
      } catch (error) {
        // A failing listener must not stop the others or the connection.
        console.error('[chat-room] listener failed', error);
      }
    }
  }

  dispose(): void {
    this.listeners.clear();
  }
}
