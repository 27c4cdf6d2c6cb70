/**
 * Requests that expect a reply, across a channel that carries messages one
 * way at a time (the webview's postMessage): each request gets a fresh
 * `requestId`, its reply names it in `inReplyTo`, and the one tracker matches
 * them. Used on both sides: the webview asks the host to take a message, the
 * host asks the webview what it shows. It never imports `vscode` or the DOM.
 */

/** A message that answers a request. */
export interface Reply {
  inReplyTo: number;
}

export class RequestTracker<TReply extends Reply> {
  private nextId = 1;
  private readonly waiting = new Map<number, (reply: TReply | undefined) => void>();

  /** Whether a request is still waiting for its reply. */
  get busy(): boolean {
    return this.waiting.size > 0;
  }

  /**
   * Sends a request through `send`, which puts the given id in it. Resolves
   * with the reply to that id, or with undefined when none came within
   * `timeoutMs` (or the tracker gave up on everything).
   */
  request(send: (requestId: number) => void, timeoutMs: number): Promise<TReply | undefined> {
    const requestId = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish(undefined), timeoutMs);
      const finish = (reply: TReply | undefined) => {
        clearTimeout(timer);
        this.waiting.delete(requestId);
        resolve(reply);
      };
      this.waiting.set(requestId, finish);
      send(requestId);
    });
  }

  /** Hands a reply to the request it answers; false when none waits for it (late, or never asked). */
  settle(reply: TReply): boolean {
    const finish = this.waiting.get(reply.inReplyTo);
    finish?.(reply);
    return finish !== undefined;
  }

  /** Gives up on every waiting request: each resolves with undefined. */
  cancelAll(): void {
    for (const finish of [...this.waiting.values()]) finish(undefined);
  }
}
