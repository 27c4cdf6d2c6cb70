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

/**
 * Holds at most one disposable, "the current one": setting a new value
 * disposes the one before, and disposing the holder disposes the value.
 * `clearAndLeak` hands the value over without disposing it, for an owner
 * that must still finish with it (a room being left says goodbye first).
 */
export class MutableDisposable<T extends IDisposable> implements IDisposable {
  private current: T | undefined;
  private disposed = false;

  get value(): T | undefined {
    return this.current;
  }

  set value(value: T | undefined) {
    if (this.disposed) {
      value?.dispose();
      return;
    }
    if (value === this.current) return;
    const previous = this.current;
    this.current = value;
    previous?.dispose();
  }

  /** Disposes the value and holds none. */
  clear(): void {
    this.value = undefined;
  }

  /** Holds none, and returns the value it held without disposing it: the caller owns it now. */
  clearAndLeak(): T | undefined {
    const value = this.current;
    this.current = undefined;
    return value;
  }

  dispose(): void {
    this.disposed = true;
    const value = this.current;
    this.current = undefined;
    value?.dispose();
  }
}

/** Several disposables released together, in reverse order, once. */
export function combinedDisposable(...resources: IDisposable[]): IDisposable {
  return toDisposable(() => {
    for (const resource of resources.reverse()) {
      try {
        resource.dispose();
      } catch {
        // One failing release must not keep the others from running.
      }
    }
  });
}
