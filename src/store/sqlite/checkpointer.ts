import { closeSync, fdatasync, fstat, open } from "node:fs";
import type Database from "better-sqlite3";

/**
 * The WAL size at which a commit checkpoints anyway, between timer rounds: 50,000 pages, ~200 MB,
 * more than a second of the heaviest writing measured (~110 MB/s of WAL from 5,500 creates/s),
 * so it only acts when the timer cannot (the event loop held up, or a long-lived reader in
 * another process). At 10,000 pages it fired inside commits several times a second under load.
 */
const SAFETY_NET_PAGES = 50_000;
/** After a checkpoint resets the WAL, its file is cut back to this size. */
const WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024;
/** How often the WAL's new pages are flushed to disk ahead of the checkpoint, off this thread. */
const PRE_FLUSH_EVERY_MS = 100;

/**
 * WAL checkpoints on a timer rather than every 1000 pages. SQLite's automatic checkpoint runs
 * inside whichever commit crosses its threshold, copying pages back to the database with two
 * fsyncs: under sustained writes that was every few dozen commits. A PASSIVE checkpoint once per
 * `everyMs`, between calls, does the same work far less often. It stays on this thread on
 * purpose: a checkpoint that completes between writes lets the next commit restart the WAL from
 * its beginning, reusing file space already allocated. Run from a background thread instead, it
 * never caught up with a busy writer, the WAL was never restarted, and under a create benchmark
 * it grew past 1 GB in a minute, every commit paying to extend the file.
 *
 * What can leave the thread is the wait: a checkpoint first fsyncs the WAL, and under sustained
 * writes that flush of tens of megabytes blocked every call for tens of milliseconds. So the
 * WAL's pages are also flushed every 100 ms by `fdatasync` on libuv's thread pool, and the
 * checkpoint's own fsync finds little left to write. It changes nothing SQLite relies on: the
 * checkpoint still syncs before it copies, and the file is only read-opened here, never written
 * or locked (SQLite keeps no POSIX locks on the WAL, so opening and closing it here cannot drop
 * one of SQLite's).
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
  const preFlush = preFlushWal(`${db.name}-wal`, PRE_FLUSH_EVERY_MS);
  return {
    stop: () => {
      clearInterval(timer);
      preFlush.stop();
    },
  };
}

/**
 * Every `everyMs`, if the WAL was written since the last round, `fdatasync`s it asynchronously.
 * One flush at a time; errors (no WAL yet, a platform that refuses to sync a read-only handle)
 * only skip the round.
 */
function preFlushWal(walPath: string, everyMs: number): { stop: () => void } {
  let fd: number | undefined;
  let running = false;
  let stopped = false;
  let lastModified = -1;
  // Synchronous, and never while a request on the handle is in flight: stop() runs just before
  // the database closes, and SQLite then deletes the WAL, which Windows completes only once
  // every handle on it is closed.
  const release = () => {
    if (fd === undefined) return;
    try {
      closeSync(fd);
    } catch {
      // Already closed: nothing to release.
    }
    fd = undefined;
  };
  const done = () => {
    running = false;
    if (stopped) release();
  };
  const flush = (handle: number) =>
    fstat(handle, (statError, stats) => {
      if (statError || stopped || stats.mtimeMs === lastModified) return done();
      fdatasync(handle, (syncError) => {
        if (!syncError) lastModified = stats.mtimeMs;
        done();
      });
    });
  const timer = setInterval(() => {
    if (running || stopped) return;
    running = true;
    if (fd !== undefined) return flush(fd);
    open(walPath, "r", (error, opened) => {
      if (error) return done();
      fd = opened;
      if (stopped) return done();
      flush(opened);
    });
  }, everyMs);
  timer.unref();
  return {
    stop: () => {
      stopped = true;
      clearInterval(timer);
      if (!running) release();
    },
  };
}
