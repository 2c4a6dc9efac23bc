import type Database from "better-sqlite3";

interface Pending {
  work: () => unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/**
 * Group commit. Mutations that arrive during one turn of the event loop — the calls a client has
 * in flight — share one IMMEDIATE transaction, and each caller is answered only once it has
 * committed, so nothing is acknowledged that a crash could lose. A commit writes every page it
 * touched to the WAL; sharing it among many mutations is what makes concurrent writes cheap.
 *
 * The batch runs without savepoints (they journal every page a mutation touches, which costs
 * more than the mutation): if any mutation throws, the whole batch rolls back and each mutation
 * is then run again in a transaction of its own, so only the failing one fails.
 */
export class WriteBatcher {
  #queue: Pending[] = [];
  #scheduled = false;
  readonly #together: Database.Transaction<(batch: Pending[]) => unknown[]>;
  readonly #alone: Database.Transaction<(work: () => unknown) => unknown>;

  /** `onBegin` runs first thing in every transaction the batcher opens. */
  constructor(db: Database.Database, onBegin: () => void = () => {}) {
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
      this.#queue.push({ work, resolve: resolve as (value: unknown) => void, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        // After the current turn: every call read from stdin in this turn joins the batch.
        setImmediate(() => this.flush());
      }
    });
  }

  /** Commits whatever is queued now. */
  flush(): void {
    this.#scheduled = false;
    const batch = this.#queue;
    if (batch.length === 0) return;
    this.#queue = [];
    if (batch.length > 1) {
      let results: unknown[] | undefined;
      try {
        results = this.#together.immediate(batch);
      } catch {
        // Rolled back as a whole; find the culprit by running each on its own below.
      }
      if (results) {
        batch.forEach((op, i) => op.resolve(results[i]));
        return;
      }
    }
    for (const op of batch) {
      try {
        op.resolve(this.#alone.immediate(op.work));
      } catch (error) {
        op.reject(error);
      }
    }
  }
}
