import { existsSync } from "node:fs";
import Database from "better-sqlite3";
import { systemClock, type Clock } from "./clock.js";
import { countUse, judgeKey, lookupHash, type VerifyCode } from "./keys/verify.js";
import { toKeyView, type KeyView } from "./keys/view.js";
import { openDatabase } from "./store/sqlite/database.js";
import { migrate } from "./store/sqlite/migrate.js";
import { SqliteKeyRepository } from "./store/sqlite/repository.js";

export interface VerifierOptions {
  /** The server's database: a file path (which must exist), or an open better-sqlite3 handle. */
  db: string | Database.Database;
  /** Milliseconds since the epoch; tests pass a clock they control. */
  clock?: Clock;
  /** How often counted uses are written (default 1000 ms; always on `close()`). */
  usageFlushMs?: number;
}

export interface VerifyResult {
  valid: boolean;
  code: VerifyCode;
  /** The key, when it exists (VALID, EXPIRED, REVOKED). */
  key?: KeyView;
  /** The tenant the key belongs to. */
  merchant_id?: string;
}

export interface Verifier {
  /** Checks a plaintext key against every tenant. Never throws for a bad key: the code says why. */
  verify(plaintext: string): Promise<VerifyResult>;
  /** Writes counted uses and closes the database if the verifier opened it. */
  close(): Promise<void>;
}

/**
 * Opens a verifier on the server's database (V1). Verification is one indexed lookup and no
 * write: uses are counted in memory and written in batches (at least every second, and on
 * close), so `last_used_at` and `usage_count` are visible to the server within about a second.
 */
export function openVerifier(options: VerifierOptions): Verifier {
  const clock = options.clock ?? systemClock;
  let db: Database.Database;
  const ownsDb = typeof options.db === "string";
  if (typeof options.db === "string") {
    // A mistyped path must not silently create an empty database that knows no key.
    if (options.db !== ":memory:" && !existsSync(options.db)) throw new Error(`openVerifier: no database file at ${options.db}`);
    db = openDatabase(options.db);
  } else if (options.db instanceof Database) {
    db = options.db;
    migrate(db);
  } else {
    throw new TypeError("openVerifier: options.db must be a file path or a better-sqlite3 Database");
  }

  const repository = new SqliteKeyRepository(db, { usageFlushMs: options.usageFlushMs, closeDatabase: ownsDb });
  let closed = false;
  return {
    async verify(plaintext) {
      if (closed) throw new Error("openVerifier: verify() called after close()");
      if (typeof plaintext !== "string") throw new TypeError("verify: the key must be a string");
      // Synchronous inside: one statement, no promise between the lookup and the verdict.
      const hash = lookupHash(plaintext);
      if (hash === undefined) return { valid: false, code: "MALFORMED" };
      const now = clock();
      const check = countUse(judgeKey(repository.lookupByHash(hash), now), repository, now);
      if (!("record" in check)) return { valid: false, code: check.code };
      return { valid: check.code === "VALID", code: check.code, key: toKeyView(check.record, now), merchant_id: check.record.tenantId };
    },
    async close() {
      if (closed) return;
      closed = true;
      await repository.close();
    },
  };
}
