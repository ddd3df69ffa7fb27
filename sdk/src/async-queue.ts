// A queue of items read by one `for await` loop (no Node.js modules: the fetch entry point uses it too).

/** An async queue read by one `for await` loop. */
export class AsyncQueue<T> {
  private readonly items: T[] = [];
  private readonly waiters: { resolve: (r: IteratorResult<T, undefined>) => void; reject: (e: unknown) => void }[] = [];
  private ended = false;
  private failure: { error: unknown } | undefined;

  /** True once `end()` or `fail()` was called. */
  get closed(): boolean {
    return this.ended || this.failure !== undefined;
  }

  /** Adds an item (ignored once closed). */
  push(item: T): void {
    if (this.closed) return;
    const waiter = this.waiters.shift();
    if (waiter) waiter.resolve({ value: item, done: false });
    else this.items.push(item);
  }

  /** Ends the queue after the items already in it. */
  end(): void {
    if (this.closed) return;
    this.ended = true;
    for (const waiter of this.waiters.splice(0)) waiter.resolve({ value: undefined, done: true });
  }

  /** Fails the queue: after the items already in it, or at once when `discard` is set. */
  fail(error: unknown, discard = false): void {
    if (this.closed) return;
    if (discard) this.items.length = 0;
    this.failure = { error };
    for (const waiter of this.waiters.splice(0)) waiter.reject(error);
  }

  /** Drops the items and ends the queue (the reader stopped early). */
  discard(): void {
    this.items.length = 0;
    this.end();
  }

  /** The next item, the end, or the failure. */
  next(): Promise<IteratorResult<T, undefined>> {
    if (this.items.length > 0) return Promise.resolve({ value: this.items.shift() as T, done: false });
    if (this.failure) return Promise.reject(this.failure.error);
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }
}
