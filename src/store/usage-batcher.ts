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
  /** Keys written per call of the backend's write (default SLICE_ROWS). */
  sliceRows?: number;
}

/**
 * Keys per write: a batch is written in slices of consecutive row ids, one transaction each, with
 * a turn of the event loop between them. Written whole, a second's counts of 17,000 different
 * keys on a 1M-key SQLite file held the thread for 120 ms (and the first, cold, for 760 ms); in
 * slices of 1,000 the longest turn was 25 ms, and the whole write took as long (each slice's rows
 * are on pages of their own, so no page is written twice).
 */
export const SLICE_ROWS = 1000;

/**
 * Counts of one batch, in columns: a key's slot in the arrays, its count and its last use. A
 * process verifying tens of thousands of different keys a second holds that many counts until
 * the next write; as one object per key they all survived V8's young-generation collections and
 * filled its old generation (measured at 30,000 keys a second: old space 20 MB, against 10 MB
 * with the counts in columns, and 13 MB more resident memory). Slots and numbers in typed arrays
 * are no objects.
 */
class Counts<Ref extends number> {
  readonly slots = new Map<Ref, number>();
  count: Float64Array;
  lastUsedAt: Float64Array;

  constructor(capacity: number) {
    this.count = new Float64Array(capacity);
    this.lastUsedAt = new Float64Array(capacity);
  }

  add(ref: Ref, count: number, at: number): void {
    const slot = this.slots.get(ref);
    if (slot !== undefined) {
      this.count[slot]! += count;
      if (at > this.lastUsedAt[slot]!) this.lastUsedAt[slot] = at;
      return;
    }
    const next = this.slots.size;
    if (next === this.count.length) this.#grow();
    this.slots.set(ref, next);
    this.count[next] = count;
    this.lastUsedAt[next] = at;
  }

  /** The counts of `refs` as the backend's write takes them, in the order given. */
  toMap(refs: readonly Ref[]): Map<Ref, UsageDelta> {
    const map = new Map<Ref, UsageDelta>();
    for (const ref of refs) {
      const slot = this.slots.get(ref)!;
      map.set(ref, { count: this.count[slot]!, lastUsedAt: this.lastUsedAt[slot]! });
    }
    return map;
  }

  #grow(): void {
    const count = new Float64Array(this.count.length * 2);
    const lastUsedAt = new Float64Array(this.count.length * 2);
    count.set(this.count);
    lastUsedAt.set(this.lastUsedAt);
    this.count = count;
    this.lastUsedAt = lastUsedAt;
  }
}

/** Slots a new batch starts with; it doubles as needed, and the next starts at the last one's size. */
const INITIAL_CAPACITY = 64;

/**
 * Usage counting for verified keys without a write per verification, the policy both backends
 * share: uses are summed in memory per key and handed to the backend's `write` at most every
 * `intervalMs`, and on close. Writes add (`count + n`, the latest `last_used_at`), never
 * overwrite, so several processes counting on one store stay exact. A batch goes to `write` in
 * slices of `sliceRows` keys in ascending row-id order (so concurrent writers lock rows in one
 * order), between turns of the event loop. A failed write (a busy or unreachable database) keeps
 * its slice's counts and the later slices' for the next round. Until written, `pending()` lets
 * the repository show its own uses in what it reads, so reads never wait for a write; a slice
 * stops being pending as its write returns, in the same turn, so no read counts it twice.
 */
export class UsageBatcher<Ref extends number> {
  readonly #write: (batch: Map<Ref, UsageDelta>) => void | Promise<void>;
  readonly #onError: (error: unknown) => void;
  readonly #sliceRows: number;
  readonly #timer: NodeJS.Timeout;
  #pending = new Counts<Ref>(INITIAL_CAPACITY);
  /** The batch being written, still counted by `pending()` until it has committed. */
  #writing: Counts<Ref> | undefined;
  #flushing: Promise<void> | undefined;

  constructor(write: (batch: Map<Ref, UsageDelta>) => void | Promise<void>, options: UsageBatcherOptions = {}) {
    this.#write = write;
    this.#onError = options.onError ?? (() => {});
    this.#sliceRows = options.sliceRows ?? SLICE_ROWS;
    this.#timer = setInterval(() => void this.flush(), options.intervalMs ?? 1000);
    // Never keep a process alive just to flush: close() flushes what is left.
    this.#timer.unref();
  }

  record(ref: Ref, at: number): void {
    this.#pending.add(ref, 1, at);
  }

  /** Uses counted here and not yet written (or being written). */
  pending(ref: Ref): UsageDelta | undefined {
    const waiting = this.#pending.slots.get(ref);
    const writing = this.#writing?.slots.get(ref);
    if (waiting === undefined && writing === undefined) return undefined;
    let count = 0;
    let lastUsedAt = 0;
    if (waiting !== undefined) {
      count += this.#pending.count[waiting]!;
      lastUsedAt = this.#pending.lastUsedAt[waiting]!;
    }
    if (writing !== undefined) {
      count += this.#writing!.count[writing]!;
      lastUsedAt = Math.max(lastUsedAt, this.#writing!.lastUsedAt[writing]!);
    }
    return { count, lastUsedAt };
  }

  /** Writes what has been counted; one write at a time. */
  flush(): Promise<void> {
    if (this.#flushing) return this.#flushing.then(() => this.flush());
    if (this.#pending.slots.size === 0) return Promise.resolve();
    const batch = this.#pending;
    this.#pending = new Counts(Math.max(INITIAL_CAPACITY, batch.slots.size));
    this.#writing = batch;
    this.#flushing = this.#writeInSlices(batch).finally(() => {
      this.#writing = undefined;
      this.#flushing = undefined;
    });
    return this.#flushing;
  }

  async #writeInSlices(batch: Counts<Ref>): Promise<void> {
    const refs = [...batch.slots.keys()].sort((a, b) => a - b);
    for (let start = 0; start < refs.length; start += this.#sliceRows) {
      if (start > 0) await new Promise((resolve) => setImmediate(resolve));
      const slice = refs.slice(start, start + this.#sliceRows);
      try {
        const written = this.#write(batch.toMap(slice));
        // A synchronous write (SQLite) has committed when it returns: no await before the
        // slice leaves `pending()`, or a read in between would count it twice.
        if (written instanceof Promise) await written;
      } catch (error) {
        for (const ref of refs.slice(start)) {
          const slot = batch.slots.get(ref)!;
          this.#pending.add(ref, batch.count[slot]!, batch.lastUsedAt[slot]!);
        }
        batch.slots.clear();
        this.#onError(error);
        return;
      }
      for (const ref of slice) batch.slots.delete(ref);
    }
  }

  /** Stops the timer and writes what is left (once; a failure is reported, the counts are lost). */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.flush();
  }
}
