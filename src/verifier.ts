import { existsSync } from "node:fs";
import Database from "better-sqlite3";
import { systemClock, type Clock } from "./clock.js";
import { ENVIRONMENTS, KEY_TYPES } from "./keys/format.js";
import { countUse, judgeKey, screenKey, type KeyRequirement, type VerifyCode } from "./keys/verify.js";
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

/**
 * What the service requires of the key, e.g. `{ type: "secret", environment: "live" }`. A key of
 * another type or environment is refused (WRONG_TYPE, WRONG_ENVIRONMENT) from its prefix alone:
 * no lookup, no use counted.
 */
export type VerifyOptions = KeyRequirement;

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
  verify(plaintext: string, options?: VerifyOptions): Promise<VerifyResult>;
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
    async verify(plaintext, options = {}) {
      if (closed) throw new Error("openVerifier: verify() called after close()");
      if (typeof plaintext !== "string") throw new TypeError("verify: the key must be a string");
      checkOptions(options);
      // Synchronous inside: one statement, no promise between the lookup and the verdict.
      const screened = screenKey(plaintext, options);
      if ("code" in screened) return { valid: false, code: screened.code };
      const now = clock();
      const check = countUse(judgeKey(repository.lookupByHash(screened.hash), now), repository, now);
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

/** A misspelt requirement must not pass every key: `{ type: "sk" }` is a programming error. */
function checkOptions(options: VerifyOptions): void {
  if (typeof options !== "object" || options === null) throw new TypeError("verify: options must be an object such as { type: \"secret\", environment: \"live\" }");
  const { type, environment } = options;
  if (type !== undefined && !KEY_TYPES.includes(type)) throw new TypeError(`verify: options.type must be one of ${KEY_TYPES.join(", ")}`);
  if (environment !== undefined && !ENVIRONMENTS.includes(environment)) {
    throw new TypeError(`verify: options.environment must be one of ${ENVIRONMENTS.join(", ")}`);
  }
}
