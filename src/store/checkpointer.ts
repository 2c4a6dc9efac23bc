import type Database from "better-sqlite3";

/** The WAL size at which a commit checkpoints anyway, between timer rounds: 10,000 pages, ~40 MB. */
const SAFETY_NET_PAGES = 10_000;
/** After a checkpoint resets the WAL, its file is cut back to this size. */
const WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024;

/**
 * WAL checkpoints on a timer rather than every 1000 pages. SQLite's automatic checkpoint runs
 * inside whichever commit crosses its threshold, copying pages back to the database with two
 * fsyncs: under sustained writes that was every few dozen commits. A PASSIVE checkpoint once per
 * `everyMs`, between calls, does the same work far less often. It stays on this thread on
 * purpose: a checkpoint that completes between writes lets the next commit restart the WAL from
 * its beginning, reusing file space already allocated. Run from a background thread instead, it
 * never caught up with a busy writer, the WAL was never restarted, and under a create benchmark
 * it grew past 1 GB in a minute, every commit paying to extend the file.
 */
export function scheduleCheckpoints(db: Database.Database, everyMs: number): { stop: () => void } | undefined {
  if (db.memory) return undefined;
  db.pragma(`wal_autocheckpoint = ${SAFETY_NET_PAGES}`);
  db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`);
  const timer = setInterval(() => {
    try {
      // PASSIVE never waits for other processes' readers or writers; what it cannot copy now,
      // the next round will.
      if (db.open) db.pragma("wal_checkpoint(PASSIVE)");
    } catch {
      // Busy or interrupted: nothing is lost, the WAL keeps the pages for the next round.
    }
  }, everyMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
