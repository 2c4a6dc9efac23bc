import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AppError } from "../../src/errors.js";
import { openDatabase } from "../../src/store/sqlite/database.js";
import { SqliteKeyRepository } from "../../src/store/sqlite/repository.js";
import { newKey } from "../helpers/keys.js";
import { tempDir } from "../helpers/spawn.js";

const ALICE = { tenantId: "merchant_a", subject: "alice", client: null };
const BUSY_TIMEOUT_MS = 800;

/**
 * Another process's write lock, as a second connection holding an IMMEDIATE transaction. The
 * repository under test never waits for it on the thread: this test's own timers keep running.
 */
describe("a write lock held elsewhere", () => {
  let dir: ReturnType<typeof tempDir>;
  let path: string;
  let repository: SqliteKeyRepository;
  let other: Database.Database;
  const errors: unknown[] = [];

  beforeEach(async () => {
    dir = tempDir();
    path = join(dir.path, "keys.db");
    repository = new SqliteKeyRepository(openDatabase(path), { busyTimeoutMs: BUSY_TIMEOUT_MS, onUsageError: (error) => errors.push(error) });
    other = new Database(path);
  });
  afterEach(async () => {
    if (other.inTransaction) other.exec("ROLLBACK");
    other.close();
    await repository.close();
    dir.remove();
    errors.length = 0;
  });

  const lock = () => other.exec("BEGIN IMMEDIATE");

  it("never blocks a read, even with a write and counted uses waiting for the lock", async () => {
    const input = newKey("k");
    const created = await repository.createKey(ALICE, input, 1);
    if (!created.ok) throw new Error("not created");
    const key = created.key;
    repository.recordUsage((await repository.findKeyByHash(input.hash))!, 2);
    lock();
    const waiting = repository.createKey(ALICE, newKey("waiting"), 1).catch((error: unknown) => error);
    await new Promise((resolve) => setTimeout(resolve, 30));
    const started = performance.now();
    expect(await repository.getKey("merchant_a", key.keyId)).toMatchObject({ keyId: key.keyId });
    expect((await repository.listKeys("merchant_a", { now: 2, limit: 5 })).keys).toHaveLength(1);
    expect((await repository.listAuditEvents("merchant_a", { limit: 5 })).events).toHaveLength(1);
    expect(await repository.findKeyByHash("0".repeat(64))).toBeUndefined();
    // Far below the busy timeout: the reads did not wait for the lock at all.
    expect(performance.now() - started).toBeLessThan(BUSY_TIMEOUT_MS / 2);
    expect(await waiting).toMatchObject({ code: "ERR_BUSY" });
  });

  it("answers writes queued together with ERR_BUSY together, once each, within the busy timeout, and the thread stays free meanwhile", async () => {
    lock();
    const started = performance.now();
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 20);
    const settled = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => repository.createKey(ALICE, newKey(`queued ${i}`), 1)));
    const elapsed = performance.now() - started;
    clearInterval(ticker);
    for (const outcome of settled) {
      expect(outcome.status).toBe("rejected");
      const reason = (outcome as PromiseRejectedResult).reason;
      expect(reason).toBeInstanceOf(AppError);
      expect(reason).toMatchObject({ code: "ERR_BUSY" });
    }
    // Once, not once per queued write (five writes in turn would take five timeouts).
    expect(elapsed).toBeGreaterThanOrEqual(BUSY_TIMEOUT_MS - 5);
    expect(elapsed).toBeLessThan(2 * BUSY_TIMEOUT_MS);
    // The event loop kept turning while the writes waited.
    expect(ticks).toBeGreaterThan(BUSY_TIMEOUT_MS / 20 / 3);
    other.exec("ROLLBACK");
    expect((await repository.listKeys("merchant_a", { now: 2, limit: 10 })).keys).toEqual([]);
  });

  it("commits a waiting write as soon as the lock is released, before its deadline", async () => {
    lock();
    const pending = repository.createKey(ALICE, newKey("waits"), 1);
    setTimeout(() => other.exec("COMMIT"), BUSY_TIMEOUT_MS / 4);
    await expect(pending).resolves.toMatchObject({ ok: true, key: { name: "waits" } });
    expect((await repository.listAuditEvents("merchant_a", { limit: 5 })).events).toHaveLength(1);
  });

  it("keeps counted uses while the store is locked and writes them once it is not", async () => {
    const input = newKey("used");
    await repository.createKey(ALICE, input, 1);
    repository.recordUsage((await repository.findKeyByHash(input.hash))!, 5);
    lock();
    const started = performance.now();
    await repository.flushUsage();
    expect(performance.now() - started).toBeLessThan(BUSY_TIMEOUT_MS / 2);
    expect(errors).toHaveLength(1);
    expect(await repository.getKey("merchant_a", input.keyId)).toMatchObject({ usageCount: 1, lastUsedAt: 5 });
    other.exec("COMMIT");
    await repository.flushUsage();
    const stored = other.prepare("SELECT usage_count, last_used_at FROM key_usage").all();
    expect(stored).toEqual([{ usage_count: 1, last_used_at: 5 }]);
  });
});
