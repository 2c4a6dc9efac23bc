import { closeSync, mkdirSync, openSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import { isSqliteBusy } from "./busy.js";
import { checkSchemaVersion, migrate } from "./migrate.js";

/**
 * How long one statement may wait, on this thread, for a lock another process holds. Short on
 * purpose: a longer wait would hold up every other call. Writes wait longer, off the thread
 * (WriteBatcher); in WAL mode reads need no lock a writer holds.
 */
export const STATEMENT_BUSY_WAIT_MS = 20;

export interface OpenDatabaseOptions {
  /**
   * Create the file's directory, owner-only (0700), when it is missing. Only the per-user default
   * location asks for this: a chosen path whose directory is missing is far more likely a typo
   * than a wish for a new, empty database, so it fails with DatabaseDirectoryMissingError.
   */
  createDirectory?: boolean;
  /** How long opening and migrating wait for another process's lock before SQLITE_BUSY. */
  busyTimeoutMs?: number;
  /** Path to the better-sqlite3 addon; only tests set it, to exercise a broken binary. */
  nativeBinding?: string;
}

/** better-sqlite3's native addon does not load in this Node.js; `message` says how to fix it. */
export class NativeModuleError extends Error {
  constructor(cause: unknown) {
    super(
      `better-sqlite3's native module does not load in this Node.js (${process.version}, ` +
        `NODE_MODULE_VERSION ${process.versions.modules}). It was built for another Node.js version, or not built. ` +
        "Fix: in the api-keys-mcp folder, with the same Node.js the MCP host runs, run `npm rebuild better-sqlite3`.",
      { cause },
    );
    this.name = "NativeModuleError";
  }
}

/** The database file's directory does not exist, and the caller did not ask for it to be created. */
export class DatabaseDirectoryMissingError extends Error {
  constructor(cause: unknown) {
    super("the directory of the database file does not exist", { cause });
    this.name = "DatabaseDirectoryMissingError";
  }
}

const NATIVE_LOAD_FAILURE =
  /NODE_MODULE_VERSION|compiled against a different Node\.js|Could not locate the bindings file|invalid ELF header|wrong ELF class|file too short|did not self-register|undefined symbol|not a valid Win32 application|slice is not valid mach-o|cannot open shared object|better_sqlite3\.node/i;

function isNativeLoadFailure(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  // Node's own code for any shared library that fails to load, whatever the platform's wording.
  return (error as { code?: unknown }).code === "ERR_DLOPEN_FAILED" || NATIVE_LOAD_FAILURE.test(error.message);
}

/** Runs `action`, retrying while SQLite reports the database busy, for up to `timeoutMs`. */
function retryWhileBusy<T>(action: () => T, timeoutMs: number): T {
  const deadline = Date.now() + timeoutMs;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    try {
      return action();
    } catch (error) {
      if (!isSqliteBusy(error) || Date.now() >= deadline) throw error;
      // A synchronous 10 ms pause: this runs once, at start-up, before the server takes calls.
      Atomics.wait(pause, 0, 0, 10);
    }
  }
}

/**
 * Opens (creating if needed) the key database and brings its schema up to date.
 * A new file is created owner-only (0600), and its directory too when `createDirectory` asks for
 * it; SQLite gives its -wal and -shm files the same permissions as the main file.
 */
export function openDatabase(location: string, options: OpenDatabaseOptions = {}): Database.Database {
  if (location !== ":memory:") {
    if (options.createDirectory) mkdirSync(dirname(location), { recursive: true, mode: 0o700 });
    try {
      closeSync(openSync(location, "a", 0o600));
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (code === "ENOENT" || code === "ENOTDIR") throw new DatabaseDirectoryMissingError(error);
      throw error;
    }
  }

  let db: Database.Database;
  try {
    db = new Database(location, options.nativeBinding ? { nativeBinding: options.nativeBinding } : {});
  } catch (error) {
    if (isNativeLoadFailure(error)) throw new NativeModuleError(error);
    throw error;
  }

  try {
    const busyTimeoutMs = options.busyTimeoutMs ?? 5000;
    db.pragma(`busy_timeout = ${busyTimeoutMs}`);
    // Refuse a database from a newer version before changing anything in it.
    checkSchemaVersion(db);
    // Switching to WAL needs an exclusive lock, and SQLite does not wait on the busy handler
    // for it (to avoid deadlocks), so a process starting beside another retries by itself.
    retryWhileBusy(() => db.pragma("journal_mode = WAL"), busyTimeoutMs);
    // In WAL mode NORMAL loses no committed transaction when the process dies; only an OS crash
    // or power cut can roll back the last few. FULL would add an fsync to every call.
    db.pragma("synchronous = NORMAL");
    db.pragma("foreign_keys = ON");
    migrate(db);
    db.pragma(`busy_timeout = ${STATEMENT_BUSY_WAIT_MS}`);
  } catch (error) {
    db.close();
    throw error;
  }
  return db;
}
