/**
 * Ownership of resources without `vscode`: the same shape as
 * `vscode.Disposable`, so server code and extension code tie sockets,
 * listeners, timers and child processes to an owner in the same way.
 */
export interface IDisposable {
  dispose(): void;
}

export function toDisposable(dispose: () => void): IDisposable {
  let done = false;
  return {
    dispose() {
      if (done) return;
      done = true;
      dispose();
    },
  };
}

/** Base class whose `dispose()` releases everything registered with it, newest first, once. */
export abstract class Disposable implements IDisposable {
  private readonly owned: IDisposable[] = [];
  private disposedFlag = false;

  protected get isDisposed(): boolean {
    return this.disposedFlag;
  }

  protected register<T extends IDisposable>(resource: T): T {
    if (this.disposedFlag) {
      resource.dispose();
    } else {
      this.owned.push(resource);
    }
    return resource;
  }

  dispose(): void {
    if (this.disposedFlag) return;
    this.disposedFlag = true;
    for (const resource of this.owned.splice(0).reverse()) {
      try {
        resource.dispose();
      } catch {
        // One failing release must not keep the others from running.
      }
    }
  }
}

/** A timer owned like any other resource. */
export function disposableTimeout(callback: () => void, ms: number): IDisposable {
  const handle = setTimeout(callback, ms);
  return toDisposable(() => clearTimeout(handle));
}
