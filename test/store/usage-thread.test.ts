import { renameSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { KeyRecord } from "../../src/keys/record.js";
import { openDatabase } from "../../src/store/sqlite/database.js";
import { SqliteKeyRepository } from "../../src/store/sqlite/repository.js";
import { newKey } from "../helpers/keys.js";
import { tempDir } from "../helpers/spawn.js";

const T0 = Date.UTC(2030, 0, 1);
const actor = { tenantId: "merchant_t", subject: "setup" };

/** Uses of one key as stored, not as any repository shows them. */
function stored(dbPath: string, keyId: string): { count: number; last: number | null } {
  const reader = new Database(dbPath, { readonly: true });
  try {
    return reader
      .prepare("SELECT COALESCE(u.usage_count, 0) AS count, u.last_used_at AS last FROM api_keys k LEFT JOIN key_usage u ON u.key_seq = k.seq WHERE k.key_id = ?")
      .get(keyId) as { count: number; last: number | null };
  } finally {
    reader.close();
  }
}

/** Another connection holding the write lock until `release()`. */
function holdWriteLock(dbPath: string): { release: () => void } {
  const other = new Database(dbPath);
  other.exec("BEGIN IMMEDIATE");
  return {
    release: () => {
      other.exec("ROLLBACK");
      other.close();
    },
  };
}

describe("usage written from a thread of its own (the verifier's repository)", () => {
  let dir: ReturnType<typeof tempDir>;
  let dbPath: string;
  let key: KeyRecord;
  let keyHash: string;
  let repository: SqliteKeyRepository | undefined;

  beforeEach(async () => {
    dir = tempDir();
    dbPath = join(dir.path, "keys.db");
    const setup = new SqliteKeyRepository(openDatabase(dbPath));
    const created = newKey("counted");
    key = await setup.createKey(actor, created, T0);
    keyHash = created.hash;
    await setup.close();
  });
  afterEach(async () => {
    await repository?.close();
    repository = undefined;
    dir.remove();
  });

  /** Looks the key up and counts `n` uses, the last at T0 + n, as a verification does. */
  function use(repo: SqliteKeyRepository, n: number): void {
    for (let i = 1; i <= n; i++) repo.recordUsage(repo.lookupByHash(keyHash)!, T0 + i);
  }

  it("waits out another process's write lock off the verifying thread, and the counts land exactly once", async () => {
    const errors: unknown[] = [];
    repository = new SqliteKeyRepository(openDatabase(dbPath), { usageThread: true, usageFlushMs: 3_600_000, onUsageError: (error) => errors.push(error) });
    use(repository, 100);
    const lock = holdWriteLock(dbPath);
    const written = repository.flushUsage();
    // The write waits for the lock on its thread; this thread goes on reading, its own counts shown.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await repository.getKey(actor.tenantId, key.keyId)).toMatchObject({ usageCount: 100, lastUsedAt: T0 + 100 });
    expect(stored(dbPath, key.keyId)).toEqual({ count: 0, last: null });
    lock.release();
    await written;
    expect(errors).toEqual([]);
    expect(stored(dbPath, key.keyId)).toEqual({ count: 100, last: T0 + 100 });
    expect(await repository.getKey(actor.tenantId, key.keyId)).toMatchObject({ usageCount: 100, lastUsedAt: T0 + 100 });
  });

  it("keeps the counts of a write that fails, reports it, and writes them with the next", async () => {
    const errors: unknown[] = [];
    repository = new SqliteKeyRepository(openDatabase(dbPath), { usageThread: true, usageFlushMs: 3_600_000, busyTimeoutMs: 50, onUsageError: (error) => errors.push(error) });
    use(repository, 7);
    const lock = holdWriteLock(dbPath);
    await repository.flushUsage();
    lock.release();
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: "SQLITE_BUSY" });
    expect(stored(dbPath, key.keyId)).toEqual({ count: 0, last: null });
    expect(await repository.getKey(actor.tenantId, key.keyId)).toMatchObject({ usageCount: 7 });
    use(repository, 3);
    await repository.flushUsage();
    expect(stored(dbPath, key.keyId)).toEqual({ count: 10, last: T0 + 7 });
  });

  it("starts another thread when its thread dies, losing no count", async () => {
    const errors: unknown[] = [];
    const db = openDatabase(dbPath);
    // The thread opens the file by name: with the file moved away, it cannot start.
    const moved = `${dbPath}.moved`;
    renameSync(dbPath, moved);
    repository = new SqliteKeyRepository(db, { usageThread: true, usageFlushMs: 3_600_000, onUsageError: (error) => errors.push(error) });
    use(repository, 5);
    await repository.flushUsage();
    expect(errors.length).toBeGreaterThanOrEqual(1);
    renameSync(moved, dbPath);
    await repository.flushUsage();
    expect(stored(dbPath, key.keyId)).toEqual({ count: 5, last: T0 + 5 });
  });

});
