import type Database from "better-sqlite3";
import { isSqliteBusy, storeBusy } from "./busy.js";

interface Pending {
  work: () => unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  /** When this write stops waiting for another process's lock and answers ERR_BUSY. */
  deadline: number;
}

/** Pauses between attempts to take a lock another process holds: short at first, then capped. */
const RETRY_DELAYS_MS = [1, 2, 5, 10, 20, 50];

/**
 * Group commit. Mutations that arrive during one turn of the event loop — the calls a client has
 * in flight — share one IMMEDIATE transaction, and each caller is answered only once it has
 * committed, so nothing is acknowledged that a crash could lose. A commit writes every page it
 * touched to the WAL; sharing it among many mutations is what makes concurrent writes cheap.
 *
 * The batch runs without savepoints (they journal every page a mutation touches, which costs
 * more than the mutation): if any mutation throws, the whole batch rolls back and each mutation
 * is then run again in a transaction of its own, so only the failing one fails.
 *
 * Waiting for a lock happens here, off the thread: the connection's own busy timeout is short,
 * and while another process holds the write lock the batch is retried on timers, so reads and
 * other work go on meanwhile. Each write waits at most `busyTimeoutMs` from its arrival; writes
 * queued together give up together, each answering ERR_BUSY once.
 */
export class WriteBatcher {
  #queue: Pending[] = [];
  #scheduled = false;
  #retry: NodeJS.Timeout | undefined;
  #attempt = 0;
  #drained: (() => void)[] = [];
  readonly #together: Database.Transaction<(batch: Pending[]) => unknown[]>;
  readonly #alone: Database.Transaction<(work: () => unknown) => unknown>;
  readonly #busyTimeoutMs: number;

  /** `onBegin` runs first thing in every transaction the batcher opens. */
  constructor(db: Database.Database, options: { onBegin?: () => void; busyTimeoutMs?: number } = {}) {
    const onBegin = options.onBegin ?? (() => {});
    this.#busyTimeoutMs = options.busyTimeoutMs ?? 5000;
    this.#together = db.transaction((batch: Pending[]) => {
      onBegin();
      return batch.map((op) => op.work());
    });
    this.#alone = db.transaction((work: () => unknown) => {
      onBegin();
      return work();
    });
  }

  /** Runs `work` in the next batch; resolves with its result after it has committed. */
  run<T>(work: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ work, resolve: resolve as (value: unknown) => void, reject, deadline: Date.now() + this.#busyTimeoutMs });
      if (!this.#scheduled && this.#retry === undefined) {
        this.#scheduled = true;
        // After the current turn: every call read from stdin in this turn joins the batch.
        setImmediate(() => this.flush());
      }
    });
  }

  /** Resolves once every write queued so far has committed or failed. */
  drain(): Promise<void> {
    if (this.#queue.length === 0) return Promise.resolve();
    if (this.#retry === undefined) this.flush();
    if (this.#queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#drained.push(resolve));
  }

  /** Commits whatever is queued now, or schedules a retry if another process holds the lock. */
  flush(): void {
    this.#scheduled = false;
    clearTimeout(this.#retry);
    this.#retry = undefined;
    const now = Date.now();
    const batch = this.#queue.filter((op) => {
      if (op.deadline > now) return true;
      op.reject(storeBusy());
      return false;
    });
    this.#queue = [];
    let waiting: Pending[] = [];
    if (batch.length > 1) {
      try {
        const results = this.#together.immediate(batch);
        batch.forEach((op, i) => op.resolve(results[i]));
        return this.#settled([]);
      } catch (error) {
        // Busy: nothing ran, all wait together. Otherwise rolled back as a whole; find the
        // culprit by running each on its own below.
        if (isSqliteBusy(error)) return this.#settled(batch);
      }
    }
    for (const op of batch) {
      if (waiting.length > 0) {
        waiting.push(op);
        continue;
      }
      try {
        op.resolve(this.#alone.immediate(op.work));
      } catch (error) {
        if (isSqliteBusy(error)) waiting = [op];
        else op.reject(error);
      }
    }
    this.#settled(waiting);
  }

  /** Puts `waiting` back at the head of the queue and retries later, or reports an empty queue. */
  #settled(waiting: Pending[]): void {
    this.#queue = [...waiting, ...this.#queue];
    if (waiting.length > 0) {
      const delay = RETRY_DELAYS_MS[Math.min(this.#attempt, RETRY_DELAYS_MS.length - 1)]!;
      this.#attempt += 1;
      this.#retry = setTimeout(() => this.flush(), delay);
      return;
    }
    this.#attempt = 0;
    if (this.#queue.length > 0) {
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.flush());
      }
      return;
    }
    for (const wake of this.#drained.splice(0)) wake();
  }
}
