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
 * Counts of one batch, in typed arrays: the entries (row id, count, last use) in the order they
 * came, and an open-addressing hash table from a row id to its entry. A process
 * verifying tens of thousands of different keys a second holds that many counts until the next
 * write. As one object per key they all survived V8's young-generation collections and filled its
 * old generation (measured at 30,000 keys a second: old space 20 MB, against 10 MB in columns);
 * as a `Map` from row id to slot, each batch's table grew by doubling into V8's large-object
 * space, which only a full collection empties (19 MB of dead tables after 4 s at 55,000 keys a
 * second). The batcher keeps two of these and reuses them, so a steady load allocates nothing.
 */
class Counts<Ref extends number> {
  /** For each slot of the hash table, the entry's index + 1; 0 is an empty slot. */
  #table: Int32Array;
  #shift: number;
  /** The entries, in the order they were added: row id, count, last use. */
  #refs: Float64Array;
  #count: Float64Array;
  #lastUsedAt: Float64Array;
  size = 0;
  /** Row ids up to this one have been written (slices go in ascending order): no longer pending. */
  writtenThrough = -1;

  /** `entries`: a power of two. */
  constructor(entries: number) {
    this.#table = new Int32Array(entries * 2);
    this.#shift = 32 - Math.log2(entries * 2);
    this.#refs = new Float64Array(entries);
    this.#count = new Float64Array(entries);
    this.#lastUsedAt = new Float64Array(entries);
  }

  /** The table slot holding `ref`'s entry, or the empty slot where it would go. */
  #slot(ref: number): number {
    const mask = this.#table.length - 1;
    // Fibonacci hashing of the row id's low and high words; linear probing.
    let slot = Math.imul(ref ^ (ref / 4294967296), 0x9e3779b1) >>> this.#shift;
    for (let entry = this.#table[slot]!; entry !== 0 && this.#refs[entry - 1] !== ref; entry = this.#table[slot]!) slot = (slot + 1) & mask;
    return slot;
  }

  /** The count and last use of `ref`, added to `into`; false when `ref` is not here. */
  addTo(ref: Ref, into: UsageDelta): boolean {
    const entry = this.#table[this.#slot(ref)]! - 1;
    if (entry < 0) return false;
    into.count += this.#count[entry]!;
    into.lastUsedAt = Math.max(into.lastUsedAt, this.#lastUsedAt[entry]!);
    return true;
  }

  add(ref: Ref, count: number, at: number): void {
    const slot = this.#slot(ref);
    const entry = this.#table[slot]! - 1;
    if (entry >= 0) {
      this.#count[entry]! += count;
      if (at > this.#lastUsedAt[entry]!) this.#lastUsedAt[entry] = at;
      return;
    }
    if (this.size === this.#refs.length) {
      this.#grow();
      return this.add(ref, count, at);
    }
    this.#table[slot] = this.size + 1;
    this.#refs[this.size] = ref;
    this.#count[this.size] = count;
    this.#lastUsedAt[this.size] = at;
    this.size++;
  }

  /** The row ids, sorted: the order the batch is written in. */
  sortedRefs(): Float64Array {
    return this.#refs.slice(0, this.size).sort();
  }

  /** The counts of `refs` as the backend's write takes them, in the order given. */
  toMap(refs: Float64Array): Map<Ref, UsageDelta> {
    const map = new Map<Ref, UsageDelta>();
    for (const ref of refs) {
      const entry = this.#table[this.#slot(ref)]! - 1;
      map.set(ref as Ref, { count: this.#count[entry]!, lastUsedAt: this.#lastUsedAt[entry]! });
    }
    return map;
  }

  /** Empty again, keeping the capacity for the next batch. */
  clear(): void {
    if (this.size > 0) this.#table.fill(0);
    this.size = 0;
    this.writtenThrough = -1;
  }

  /** Room for twice the entries (the table stays at most half full). */
  #grow(): void {
    const bigger = new Counts<Ref>(this.#refs.length * 2);
    for (let entry = 0; entry < this.size; entry++) bigger.add(this.#refs[entry] as Ref, this.#count[entry]!, this.#lastUsedAt[entry]!);
    this.#table = bigger.#table;
    this.#shift = bigger.#shift;
    this.#refs = bigger.#refs;
    this.#count = bigger.#count;
    this.#lastUsedAt = bigger.#lastUsedAt;
  }
}

/** Entries a batch's table starts with; it doubles as needed and keeps its size for the next batches. */
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
 * Row ids are non-negative safe integers.
 */
export class UsageBatcher<Ref extends number> {
  readonly #write: (batch: Map<Ref, UsageDelta>) => void | Promise<void>;
  readonly #onError: (error: unknown) => void;
  readonly #sliceRows: number;
  readonly #timer: NodeJS.Timeout;
  #pending = new Counts<Ref>(INITIAL_CAPACITY);
  /** The batch being written, still counted by `pending()` until it has committed. */
  #writing: Counts<Ref> | undefined;
  /** The other table, empty, to count in while the next batch is written. */
  #spare: Counts<Ref> | undefined = new Counts<Ref>(INITIAL_CAPACITY);
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
    const delta: UsageDelta = { count: 0, lastUsedAt: 0 };
    const waiting = this.#pending.addTo(ref, delta);
    const writing = this.#writing !== undefined && ref > this.#writing.writtenThrough && this.#writing.addTo(ref, delta);
    return waiting || writing ? delta : undefined;
  }

  /** Writes what has been counted; one write at a time. */
  flush(): Promise<void> {
    if (this.#flushing) return this.#flushing.then(() => this.flush());
    if (this.#pending.size === 0) return Promise.resolve();
    const batch = this.#pending;
    this.#pending = this.#spare!;
    this.#spare = undefined;
    this.#writing = batch;
    this.#flushing = this.#writeInSlices(batch).finally(() => {
      batch.clear();
      this.#spare = batch;
      this.#writing = undefined;
      this.#flushing = undefined;
    });
    return this.#flushing;
  }

  async #writeInSlices(batch: Counts<Ref>): Promise<void> {
    const refs = batch.sortedRefs();
    for (let start = 0; start < refs.length; start += this.#sliceRows) {
      if (start > 0) await new Promise((resolve) => setImmediate(resolve));
      const slice = refs.subarray(start, start + this.#sliceRows);
      try {
        const written = this.#write(batch.toMap(slice));
        // A synchronous write (SQLite) has committed when it returns: no await before the
        // slice leaves `pending()`, or a read in between would count it twice.
        if (written instanceof Promise) await written;
      } catch (error) {
        for (const ref of refs.subarray(start)) {
          const delta: UsageDelta = { count: 0, lastUsedAt: 0 };
          batch.addTo(ref as Ref, delta);
          this.#pending.add(ref as Ref, delta.count, delta.lastUsedAt);
        }
        batch.writtenThrough = Infinity;
        this.#onError(error);
        return;
      }
      batch.writtenThrough = slice[slice.length - 1]!;
    }
  }

  /** Stops the timer and writes what is left (once; a failure is reported, the counts are lost). */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.flush();
  }
}
