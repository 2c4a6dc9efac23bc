import pg from "pg";
import { AppError } from "../../errors.js";

/** How long a call waits for a connection, or for a transaction to get through contention, before ERR_BUSY. */
export const DEFAULT_BUSY_TIMEOUT_MS = 5000;

export interface PoolOptions {
  /** Connections at most (default 10). */
  max?: number;
  /** Waiting for a connection, in ms (default 2000): with PostgreSQL down, calls answer ERR_BUSY this fast. */
  connectionTimeoutMs?: number;
  /** Told about errors of idle connections (a server restart); the pool replaces them. */
  onIdleError?: (error: unknown) => void;
  /** The application_name PostgreSQL shows for these connections. */
  applicationName?: string;
  /**
   * How long one statement waits for its answer, in ms (default DEFAULT_BUSY_TIMEOUT_MS), before
   * its connection is given up as lost: a PostgreSQL that stops answering without closing its
   * connections (a frozen host, a network cut) or a lock another session keeps then ends in
   * ERR_BUSY instead of a call that never answers.
   */
  statementTimeoutMs?: number;
}

/**
 * BIGINT (epoch milliseconds, row ids, counts) read as a JavaScript number: every value this
 * store writes is far below 2^53. Set per pool, not globally, so a host application's own use of
 * `pg` is left alone.
 */
const types = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === pg.types.builtins.INT8 ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

/** A pool of connections to the database at `url`. */
export function createPool(url: string, options: PoolOptions = {}): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.max ?? 10,
    connectionTimeoutMillis: options.connectionTimeoutMs ?? 2000,
    idleTimeoutMillis: 30_000,
    application_name: options.applicationName ?? "api-keys-mcp",
    // Kept by the client, not the server: it must work when the server does not answer at all.
    query_timeout: options.statementTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS,
    types,
  });
  // An idle connection dropped by the server (a restart, a failover) would otherwise be an
  // unhandled 'error' event and end the process; the pool opens a new one when next needed.
  pool.on("error", (error) => options.onIdleError?.(error));
  // The same for a connection that fails while it is checked out but between two statements (a
  // restart or pg_terminate_backend while a transaction waits for its next statement): the
  // client emits 'error', and the pool listens only while it holds the client. Every client
  // listens for its whole life; the failure reaches its user as the next statement's error
  // (the client is no longer queryable), which is retried or answered ERR_BUSY, and the pool
  // discards the client when it is released.
  pool.on("connect", (client) => client.on("error", () => {}));
  return pool;
}

/**
 * Failures worth another try, or else ERR_BUSY: a serialization failure or a deadlock (the
 * transaction was rolled back and may simply be run again), too many connections, the server
 * shutting down or starting up, and a connection that could not be made or was lost.
 */
export function isTransient(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== "string") return isConnectionFailure(error);
  return (
    code === "40001" || // serialization_failure
    code === "40P01" || // deadlock_detected
    code === "55P03" || // lock_not_available
    code === "53300" || // too_many_connections
    code === "57P01" || // admin_shutdown
    code === "57P02" || // crash_shutdown
    code === "57P03" || // cannot_connect_now
    code.startsWith("08") || // connection_exception
    ["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "ENOTFOUND", "EHOSTUNREACH", "EAI_AGAIN"].includes(code)
  );
}

function isConnectionFailure(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  // node-postgres reports these as plain Errors, without a code. "Query read timeout" is a
  // statement that got no answer within statementTimeoutMs: its connection is given up too.
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Connection ended unexpectedly|Query read timeout/i.test(
    error.message,
  );
}

/** The answer while PostgreSQL is unreachable or too contended, at the PostgreSQL boundary. */
export function storeUnavailable(cause?: unknown): AppError {
  return new AppError("ERR_BUSY", "The key store is busy or unreachable right now. Nothing was changed; retry in a moment.", { cause });
}

/**
 * Why the store cannot be opened, when waiting will not help: the operator must change a
 * setting. `undefined` for anything else (transient failures become ERR_BUSY, the rest ERR_INTERNAL).
 */
export function openProblem(error: unknown): AppError | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  const ask = (what: string) => new AppError("ERR_CONFIG", `${what} Ask the operator to check API_KEYS_MCP_DATABASE_URL (see the server log), then retry.`, { cause: error });
  if (code === "ERR_SCHEMA_TOO_NEW") {
    return new AppError(
      "ERR_CONFIG",
      "The key database was written by a newer version of api-keys-mcp. Ask the operator to upgrade api-keys-mcp, or to set API_KEYS_MCP_DATABASE_URL to another database.",
      { cause: error },
    );
  }
  if (code === "28P01" || code === "28000") return ask("PostgreSQL refused the server's credentials.");
  if (code === "3D000") return ask("The PostgreSQL database named for the key store does not exist.");
  if (code === "42501") return ask("The PostgreSQL user lacks a privilege the key store needs (creating its tables on first start, then reading and writing them).");
  return undefined;
}

const RETRY_DELAYS_MS = [10, 25, 50, 100, 200, 400];

/**
 * Runs `work` in a transaction on a connection of its own, and retries it — from BEGIN — after a
 * transient failure, until `busyTimeoutMs` has passed; then ERR_BUSY. A failure of COMMIT
 * itself is not retried: the transaction may have committed, and running it again could apply
 * it twice; the caller gets ERR_BUSY and nothing is acknowledged.
 */
export async function inTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>, busyTimeoutMs = DEFAULT_BUSY_TIMEOUT_MS): Promise<T> {
  const deadline = Date.now() + busyTimeoutMs;
  for (let attempt = 0; ; attempt++) {
    let client: pg.PoolClient | undefined;
    let committing = false;
    try {
      client = await pool.connect();
      await client.query("BEGIN");
      const result = await work(client);
      committing = true;
      await client.query("COMMIT");
      client.release();
      return result;
    } catch (error) {
      if (client) {
        // A connection that failed, or a transaction PostgreSQL aborted (a deadlock, a
        // serialization failure), is not given back to be reused: the connection is closed, and
        // PostgreSQL rolls back whatever it had not committed. A ROLLBACK sent first could wait
        // as long again on a connection that stopped answering.
        if (!isTransient(error)) await client.query("ROLLBACK").catch(() => {});
        client.release(isTransient(error) ? (error as Error) : undefined);
      }
      if (!isTransient(error)) throw error;
      if (committing || Date.now() >= deadline) throw storeUnavailable(error);
      await new Promise((resolve) => setTimeout(resolve, RETRY_DELAYS_MS[Math.min(attempt, RETRY_DELAYS_MS.length - 1)]));
    }
  }
}

/** Runs one read, retried like a transaction after a transient failure. */
export async function readWithRetry<T>(pool: pg.Pool, read: () => Promise<T>, busyTimeoutMs = DEFAULT_BUSY_TIMEOUT_MS): Promise<T> {
  const deadline = Date.now() + busyTimeoutMs;
  for (let attempt = 0; ; attempt++) {
    try {
      return await read();
    } catch (error) {
      if (!isTransient(error)) throw error;
      if (Date.now() >= deadline) throw storeUnavailable(error);
      await new Promise((resolve) => setTimeout(resolve, RETRY_DELAYS_MS[Math.min(attempt, RETRY_DELAYS_MS.length - 1)]));
    }
  }
}
