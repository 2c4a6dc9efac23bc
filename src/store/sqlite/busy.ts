import { AppError } from "../../errors.js";

/** SQLite reports lock contention as SQLITE_BUSY (or an extended code such as SQLITE_BUSY_SNAPSHOT), or SQLITE_LOCKED. */
export function isSqliteBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED"));
}

/** The answer for a database another process keeps locked past the busy timeout. */
export function storeBusy(cause?: unknown): AppError {
  return new AppError("ERR_BUSY", "The key store is busy (another process holds its lock). Nothing was changed; retry in a moment.", { cause });
}

/** Runs a read; lock contention becomes ERR_BUSY here, at the SQLite boundary. */
export function read<T>(action: () => T): T {
  try {
    return action();
  } catch (error) {
    if (isSqliteBusy(error)) throw storeBusy(error);
    throw error;
  }
}
