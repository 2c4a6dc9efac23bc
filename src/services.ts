import type Database from "better-sqlite3";
import type { ToolServices } from "../tools/index.js";
import { Authorizer } from "./auth/authorizer.js";
import { createTokenVerifier, DEFAULT_JWKS_TIMINGS, type JwksTimings } from "./auth/verifier.js";
import type { Clock } from "./clock.js";
import { describeDatabaseUrl, type Config, type ConfigProblem } from "./config.js";
import { AppError } from "./errors.js";
import type { Logger } from "./log.js";
import { DatabaseDirectoryMissingError, NativeModuleError, openDatabase } from "./store/sqlite/database.js";
import { SchemaTooNewError } from "./store/sqlite/migrate.js";
import { SqliteKeyRepository } from "./store/sqlite/repository.js";
import { createPool } from "./store/postgres/pool.js";
import { PostgresKeyRepository } from "./store/postgres/repository.js";
import type { KeyRepository } from "./store/repository.js";

export interface ServiceOptions {
  config: Config;
  problems: readonly ConfigProblem[];
  logger: Logger;
  clock: Clock;
  /** Opens the database; tests pass one of their own. */
  openDb?: (path: string, options: { createDirectory: boolean }) => Database.Database;
  /** JWKS fetch timings; tests shorten them. */
  jwks?: JwksTimings;
  /** How often counted key uses are written (default 1000 ms); tests that count writes raise it. */
  usageFlushMs?: number;
}

/**
 * Wires the repository and the authorizer from the configuration: the services every server the
 * entry point builds shares, and that the entry point closes at shutdown (`repository.close()`
 * writes the counted uses and closes the database). Where tokens come from is not decided here:
 * that is the transport's part. Never throws: a setting or a
 * database that keeps the server from working becomes the ERR_CONFIG every call answers with
 * (E3), while the detail goes to the log.
 */
export function createServices(options: ServiceOptions): ToolServices | AppError {
  const { config, logger, clock } = options;
  // loadConfig reports a problem whenever it leaves the key material or the database out.
  if (options.problems.length > 0 || !config.auth || (config.dbPath === undefined && config.databaseUrl === undefined)) {
    return configError(options.problems);
  }

  const onUsageError = (error: unknown) => logger.warn("usage_flush_failed", { error });
  let repository: KeyRepository;
  if (config.databaseUrl !== undefined) {
    const url = config.databaseUrl;
    const postgres = new PostgresKeyRepository(createPool(url, { onIdleError: (error) => logger.warn("database_connection_lost", { error }) }), {
      auditKey: config.auditKey,
      usageFlushMs: options.usageFlushMs,
      onUsageError,
    });
    // Migrate now rather than on the first call; a failure is logged here and tried again by
    // the next call (PostgreSQL may simply not be up yet).
    postgres.ready().then(
      () => logger.info("database_ready", { database: describeDatabaseUrl(url) }),
      (error: unknown) => logger.error("database_open_failed", { database: describeDatabaseUrl(url), error }),
    );
    repository = postgres;
  } else {
    let db: Database.Database;
    try {
      db = (options.openDb ?? openDatabase)(config.dbPath!, { createDirectory: config.createDbDirectory });
    } catch (error) {
      logger.error("database_open_failed", { path: config.dbPath, error });
      return new AppError("ERR_CONFIG", databaseProblem(error), { cause: error });
    }
    repository = new SqliteKeyRepository(db, { checkpointEveryMs: 1000, auditKey: config.auditKey, usageFlushMs: options.usageFlushMs, onUsageError });
  }
  const jwks = options.jwks ?? DEFAULT_JWKS_TIMINGS;
  const authorizer = new Authorizer({
    verifyToken: createTokenVerifier(config.auth, clock, jwks),
    tenantClaims: config.auth.tenantClaims,
    rolePermissions: config.auth.rolePermissions,
    clock,
    limits: config.rateLimits,
    recordDenial: (denial) => repository.recordDenial(denial),
    logger,
  });
  return { repository, authorizer, delivery: config.delivery };
}

/** The first problem and its fix; the log has every problem, each on its own `config_problem` line. */
function configError(problems: readonly ConfigProblem[]): AppError {
  const [first, ...others] = problems;
  const more = others.length === 0 ? "" : ` The server log lists ${others.length} more configuration problem${others.length === 1 ? "" : "s"}.`;
  return new AppError(
    "ERR_CONFIG",
    first
      ? `The server is not configured correctly: ${first.message}. Ask the operator to ${first.fix}, then restart the server.${more}`
      : "The server is not configured correctly. Ask the operator to check the server log, then restart the server.",
  );
}

function databaseProblem(error: unknown): string {
  if (error instanceof NativeModuleError) {
    return "The server's SQLite module was built for another Node.js version. Ask the operator to run `npm rebuild better-sqlite3` in the api-keys-mcp folder (see the server log) and restart the server.";
  }
  if (error instanceof SchemaTooNewError) {
    return "The key database was written by a newer version of api-keys-mcp. Ask the operator to upgrade api-keys-mcp, or to set API_KEYS_MCP_DB to another file.";
  }
  if (error instanceof DatabaseDirectoryMissingError) {
    return "The directory named in API_KEYS_MCP_DB does not exist, and the server creates only its default location, so that a typo cannot start an empty key database. Ask the operator to set API_KEYS_MCP_DB to a file in an existing directory (or create the directory), then restart the server.";
  }
  const code = (error as { code?: unknown } | null)?.code;
  if (code === "EACCES" || code === "EPERM" || code === "EROFS") {
    return "The key database cannot be opened for writing. Ask the operator to make the database file and its directory readable and writable by the user the server runs as (or set API_KEYS_MCP_DB to another file), then restart the server.";
  }
  if (code === "SQLITE_NOTADB") {
    return "The file named as the key database is not an SQLite database. Ask the operator to set API_KEYS_MCP_DB to the key database file, then restart the server.";
  }
  return "The key database cannot be opened. Ask the operator to check API_KEYS_MCP_DB and the server log, then restart the server.";
}
