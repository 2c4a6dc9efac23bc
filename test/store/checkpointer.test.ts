import { copyFileSync, readdirSync, readlinkSync, rmSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openDatabase } from "../../src/store/sqlite/database.js";
import { SqliteKeyRepository } from "../../src/store/sqlite/repository.js";
import { newKey } from "../helpers/keys.js";

import { tempDir } from "../helpers/spawn.js";

/** Keys in a copy of the main database file alone, without its WAL: what checkpoints have copied back. */
function keysInMainFile(path: string): number {
  const copy = `${path}.copy`;
  copyFileSync(path, copy);
  try {
    const db = new Database(copy);
    try {
      return db.prepare("SELECT COUNT(*) FROM api_keys").pluck().get() as number;
    } finally {
      db.close();
    }
  } catch {
    return -1; // copied mid-checkpoint: try again
  } finally {
    for (const file of [copy, `${copy}-wal`, `${copy}-shm`]) rmSync(file, { force: true });
  }
}

describe("WAL checkpoints on a timer", () => {
  let dir: ReturnType<typeof tempDir>;
  let path: string;
  beforeEach(() => {
    dir = tempDir();
    path = join(dir.path, "keys.db");
  });
  afterEach(() => dir.remove());

  it("raises the automatic threshold and checkpoints on the timer, copying committed pages back", async () => {
    const db = openDatabase(path);
    // The schema into the main file first, so that the copy below can be read at all.
    db.pragma("wal_checkpoint(TRUNCATE)");
    const repository = new SqliteKeyRepository(db, { checkpointEveryMs: 20 });
    try {
      expect(db.pragma("wal_autocheckpoint", { simple: true })).toBe(50_000);
      expect(db.pragma("journal_size_limit", { simple: true })).toBe(64 * 1024 * 1024);
      expect(keysInMainFile(path)).toBe(0);
      for (let i = 0; i < 20; i++) await repository.createKey({ tenantId: "m", subject: "s", client: null }, newKey(`k${i}`), Date.now());
      // Bounded wait for the timer's next rounds: 20 keys are far below the automatic threshold.
      const deadline = Date.now() + 5000;
      while (keysInMainFile(path) < 20 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(keysInMainFile(path)).toBe(20);
    } finally {
      await repository.close();
    }
  });

  // Open file handles are listed from /proc/self/fd, so this runs on Linux (CI) and is skipped elsewhere.
  it.runIf(process.platform === "linux")("flushes the WAL from a handle of its own while writes go on, and lets go of it on close (Linux only: reads /proc)", async () => {
    const walHandles = () =>
      readdirSync("/proc/self/fd").filter((fd) => {
        try {
          // Once SQLite deletes the WAL on close, a handle still open reads "…-wal (deleted)".
          return readlinkSync(`/proc/self/fd/${fd}`).startsWith(`${path}-wal`);
        } catch {
          return false; // closed since it was listed
        }
      }).length;
    const db = openDatabase(path);
    const repository = new SqliteKeyRepository(db, { checkpointEveryMs: 60_000 });
    const sqliteHandles = walHandles();
    try {
      await repository.createKey({ tenantId: "m", subject: "s", client: null }, newKey("first"), Date.now());
      // Bounded wait for the pre-flush (every 100 ms) to open the WAL beside SQLite.
      const deadline = Date.now() + 5000;
      while (walHandles() === sqliteHandles && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(walHandles()).toBe(sqliteHandles + 1);
      for (let i = 0; i < 50; i++) await repository.createKey({ tenantId: "m", subject: "s", client: null }, newKey(`k${i}`), Date.now());
      expect(db.prepare("SELECT COUNT(*) FROM api_keys").pluck().get()).toBe(51);
    } finally {
      await repository.close();
    }
    // The handle is closed asynchronously once the round in progress ends.
    const deadline = Date.now() + 5000;
    while (walHandles() > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(walHandles()).toBe(0);
  });
});
