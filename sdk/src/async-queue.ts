// A queue of items read by one `for await` loop (no Node.js modules: the fetch entry point uses it too).

/** An async queue read by one `for await` loop. */
export class AsyncQueue<T> {
  private readonly items: T[] = [];
  private readonly waiters: { resolve: (r: IteratorResult<T, undefined>) => void; reject: (e: unknown) => void }[] = [];
  private ended = false;
  private failure: { error: unknown } | undefined;
  private pressure: { highWaterMark: number; onChange: (paused: boolean) => void; paused: boolean } | undefined;
  private reading = false;

  /**
   * Reports when the reader lags: onChange(true) once highWaterMark items wait, onChange(false)
   * when the reader has taken them down to half of it (the producer should pause meanwhile).
   * Only once a reader has come (`startReading()`): with none, nothing would ever resume.
   */
  setBackpressure(highWaterMark: number, onChange: (paused: boolean) => void): void {
    this.pressure = { highWaterMark, onChange, paused: false };
    this.checkPressure();
  }

  /** A reader is taking the items from now on: backpressure applies. */
  startReading(): void {
    this.reading = true;
    this.checkPressure();
  }

  private checkPressure(): void {
    const pressure = this.pressure;
    if (pressure && this.reading && !pressure.paused && !this.closed && this.items.length >= pressure.highWaterMark) {
      pressure.paused = true;
      pressure.onChange(true);
    }
  }

  /** Items waiting for the reader. */
  get size(): number {
    return this.items.length;
  }

  /** True once `end()` or `fail()` was called. */
  get closed(): boolean {
    return this.ended || this.failure !== undefined;
  }

  /** Adds an item (ignored once closed). */
  push(item: T): void {
    if (this.closed) return;
    const waiter = this.waiters.shift();
    if (waiter) {
      waiter.resolve({ value: item, done: false });
      return;
    }
    this.items.push(item);
    this.checkPressure();
  }

  /** Ends the queue after the items already in it. */
  end(): void {
    if (this.closed) return;
    this.ended = true;
    this.release();
    for (const waiter of this.waiters.splice(0)) waiter.resolve({ value: undefined, done: true });
  }

  /** Fails the queue: after the items already in it, or at once when `discard` is set. */
  fail(error: unknown, discard = false): void {
    if (this.closed) return;
    if (discard) this.items.length = 0;
    this.failure = { error };
    this.release();
    for (const waiter of this.waiters.splice(0)) waiter.reject(error);
  }

  /** Drops the items and ends the queue (the reader stopped early). */
  discard(): void {
    this.items.length = 0;
    this.end();
  }

  // A closed queue takes nothing more: a producer paused for it must not wait on.
  private release(): void {
    if (this.pressure?.paused) {
      this.pressure.paused = false;
      this.pressure.onChange(false);
    }
  }

  /** The next item, the end, or the failure. */
  next(): Promise<IteratorResult<T, undefined>> {
    if (this.items.length > 0) {
      const item = this.items.shift() as T;
      const pressure = this.pressure;
      if (pressure?.paused && this.items.length <= pressure.highWaterMark / 2) {
        pressure.paused = false;
        pressure.onChange(false);
      }
      return Promise.resolve({ value: item, done: false });
    }
    if (this.failure) return Promise.reject(this.failure.error);
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }
}
