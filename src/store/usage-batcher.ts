/** Uses of one key counted since the last write. */
export interface UsageDelta {
  count: number;
  lastUsedAt: number;
}

export interface UsageBatcherOptions {
  /** How often counted uses are written (default 1000 ms). */
  intervalMs?: number;
  /** Told when a write fails; the counts are kept and written with the next batch. */
  onError?: (error: unknown) => void;
}

/**
 * Usage counting for verified keys without a write per verification, the policy both backends
 * share: uses are summed in memory per key and handed to the backend's `write` at most every
 * `intervalMs`, and on close. Writes add (`count + n`, the latest `last_used_at`), never
 * overwrite, so several processes counting on one store stay exact. A failed write (a busy or
 * unreachable database) keeps its counts for the next round. Until written, `pending()` lets
 * the repository show its own uses in what it reads, so reads never wait for a write.
 */
export class UsageBatcher<Ref> {
  readonly #write: (batch: Map<Ref, UsageDelta>) => void | Promise<void>;
  readonly #onError: (error: unknown) => void;
  readonly #timer: NodeJS.Timeout;
  #pending = new Map<Ref, UsageDelta>();
  /** The batch being written, still counted by `pending()` until it has committed. */
  #writing: Map<Ref, UsageDelta> | undefined;
  #flushing: Promise<void> | undefined;

  constructor(write: (batch: Map<Ref, UsageDelta>) => void | Promise<void>, options: UsageBatcherOptions = {}) {
    this.#write = write;
    this.#onError = options.onError ?? (() => {});
    this.#timer = setInterval(() => void this.flush(), options.intervalMs ?? 1000);
    // Never keep a process alive just to flush: close() flushes what is left.
    this.#timer.unref();
  }

  record(ref: Ref, at: number): void {
    add(this.#pending, ref, 1, at);
  }

  /** Uses counted here and not yet written (or being written). */
  pending(ref: Ref): UsageDelta | undefined {
    const waiting = this.#pending.get(ref);
    const writing = this.#writing?.get(ref);
    if (!writing) return waiting;
    if (!waiting) return writing;
    return { count: waiting.count + writing.count, lastUsedAt: Math.max(waiting.lastUsedAt, writing.lastUsedAt) };
  }

  /** Writes what has been counted; one write at a time. */
  flush(): Promise<void> {
    if (this.#flushing) return this.#flushing.then(() => this.flush());
    if (this.#pending.size === 0) return Promise.resolve();
    const batch = this.#pending;
    this.#pending = new Map();
    this.#writing = batch;
    const settle = (error?: unknown) => {
      this.#writing = undefined;
      this.#flushing = undefined;
      if (error === undefined) return;
      for (const [ref, delta] of batch) add(this.#pending, ref, delta.count, delta.lastUsedAt);
      this.#onError(error);
    };
    let written: void | Promise<void>;
    try {
      written = this.#write(batch);
    } catch (error) {
      settle(error);
      return Promise.resolve();
    }
    if (!(written instanceof Promise)) {
      settle();
      return Promise.resolve();
    }
    this.#flushing = written.then(() => settle(), settle);
    return this.#flushing;
  }

  /** Stops the timer and writes what is left (once; a failure is reported, the counts are lost). */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.flush();
  }
}

function add<Ref>(map: Map<Ref, UsageDelta>, ref: Ref, count: number, at: number): void {
  const entry = map.get(ref);
  if (entry) {
    entry.count += count;
    if (at > entry.lastUsedAt) entry.lastUsedAt = at;
  } else {
    map.set(ref, { count, lastUsedAt: at });
  }
}
