import type Database from "better-sqlite3";

/**
 * Usage counting for verified keys (V1) without a write per verification: uses are summed in
 * memory and written in one transaction at most every `intervalMs` (so they are visible to other
 * readers within about a second), before this process reads keys, and on close. Counts are
 * additive, so several processes batching on one file stay exact.
 */
export class UsageRecorder {
  readonly #db: Database.Database;
  readonly #write: Database.Transaction<(batch: Map<string, { count: number; lastUsedAt: number }>) => void>;
  readonly #onError: (error: unknown) => void;
  #pending = new Map<string, { count: number; lastUsedAt: number }>();
  readonly #timer: NodeJS.Timeout;

  constructor(db: Database.Database, options: { intervalMs?: number; onError?: (error: unknown) => void } = {}) {
    this.#db = db;
    const update = db.prepare(
      `UPDATE api_keys SET usage_count = usage_count + @count,
         last_used_at = MAX(COALESCE(last_used_at, 0), @lastUsedAt)
       WHERE key_id = @keyId`,
    );
    this.#write = db.transaction((batch) => {
      for (const [keyId, { count, lastUsedAt }] of batch) update.run({ keyId, count, lastUsedAt });
    });
    this.#onError = options.onError ?? (() => {});
    this.#timer = setInterval(() => this.flush(), options.intervalMs ?? 1000);
    // Never keep a process alive just to flush: close() flushes what is left.
    this.#timer.unref();
  }

  record(keyId: string, at: number): void {
    this.#add(keyId, 1, at);
  }

  /** Writes what has been counted. On failure (a busy database) the counts are kept for the next try. */
  flush(): void {
    if (this.#pending.size === 0 || !this.#db.open) return;
    const batch = this.#pending;
    this.#pending = new Map();
    try {
      this.#write.immediate(batch);
    } catch (error) {
      for (const [keyId, { count, lastUsedAt }] of batch) this.#add(keyId, count, lastUsedAt);
      this.#onError(error);
    }
  }

  #add(keyId: string, count: number, lastUsedAt: number): void {
    const entry = this.#pending.get(keyId);
    if (entry) {
      entry.count += count;
      if (lastUsedAt > entry.lastUsedAt) entry.lastUsedAt = lastUsedAt;
    } else {
      this.#pending.set(keyId, { count, lastUsedAt });
    }
  }

  close(): void {
    clearInterval(this.#timer);
    this.flush();
  }
}
