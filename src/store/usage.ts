import type Database from "better-sqlite3";

/**
 * Usage counting for verified keys (V1) without a write per verification: uses are summed in
 * memory and written in one transaction at most every `intervalMs` (so they are visible to other
 * readers within about a second), before this process reads keys, and on close. Counts are
 * additive, so several processes batching on one file stay exact.
 */
export class UsageRecorder {
  readonly #db: Database.Database;
  readonly #update: Database.Statement;
  readonly #onError: (error: unknown) => void;
  #pending = new Map<string, { count: number; lastUsedAt: number }>();
  readonly #timer: NodeJS.Timeout;

  constructor(db: Database.Database, options: { intervalMs?: number; onError?: (error: unknown) => void } = {}) {
    this.#db = db;
    this.#update = db.prepare(
      `UPDATE api_keys SET usage_count = usage_count + @count,
         last_used_at = MAX(COALESCE(last_used_at, 0), @lastUsedAt)
       WHERE key_id = @keyId`,
    );
    this.#onError = options.onError ?? (() => {});
    this.#timer = setInterval(() => this.flush(), options.intervalMs ?? 1000);
    // Never keep a process alive just to flush: close() flushes what is left.
    this.#timer.unref();
  }

  record(keyId: string, at: number): void {
    const entry = this.#pending.get(keyId);
    if (entry) {
      entry.count += 1;
      if (at > entry.lastUsedAt) entry.lastUsedAt = at;
    } else {
      this.#pending.set(keyId, { count: 1, lastUsedAt: at });
    }
  }

  /** Writes what has been counted. On failure (a busy database) the counts are kept for the next try. */
  flush(): void {
    if (this.#pending.size === 0 || !this.#db.open) return;
    const batch = this.#pending;
    this.#pending = new Map();
    try {
      this.#db
        .transaction(() => {
          for (const [keyId, { count, lastUsedAt }] of batch) this.#update.run({ keyId, count, lastUsedAt });
        })
        .immediate();
    } catch (error) {
      for (const [keyId, { count, lastUsedAt }] of batch) {
        const entry = this.#pending.get(keyId);
        if (entry) {
          entry.count += count;
          entry.lastUsedAt = Math.max(entry.lastUsedAt, lastUsedAt);
        } else {
          this.#pending.set(keyId, { count, lastUsedAt });
        }
      }
      this.#onError(error);
    }
  }

  close(): void {
    clearInterval(this.#timer);
    this.flush();
  }
}
