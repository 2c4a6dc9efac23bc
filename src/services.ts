import type Database from "better-sqlite3";
import type { ToolServices } from "../tools/index.js";
import { Authorizer } from "./auth/authorizer.js";
import { createTokenVerifier, DEFAULT_JWKS_TIMINGS, type JwksTimings } from "./auth/verifier.js";
import type { Clock } from "./clock.js";
import type { Config, ConfigProblem } from "./config.js";
import { AppError } from "./errors.js";
import type { Logger } from "./log.js";
import { NativeModuleError, openDatabase } from "./store/database.js";
import { SchemaTooNewError } from "./store/migrate.js";
import { SqliteKeyRepository } from "./store/sqlite-repository.js";

export interface ServiceOptions {
  config: Config;
  problems: readonly ConfigProblem[];
  logger: Logger;
  clock: Clock;
  /** Opens the database; tests pass one of their own. */
  openDb?: (path: string) => Database.Database;
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
  const problem = options.problems[0];
  if (problem || !config.auth) {
    const variable = problem?.variable ?? "API_KEYS_MCP_JWT_SECRET";
    return new AppError(
      "ERR_CONFIG",
      `The server is not configured correctly: ${problem?.message ?? "no token verification key"}. ` +
        `Ask the operator to set ${variable} in the server's environment and restart the server.`,
    );
  }

  let db: Database.Database;
  try {
    db = (options.openDb ?? openDatabase)(config.dbPath);
  } catch (error) {
    logger.error("database_open_failed", { path: config.dbPath, error });
    return new AppError("ERR_CONFIG", databaseProblem(error), { cause: error });
  }

  const repository = new SqliteKeyRepository(db, clock, {
    checkpointEveryMs: 1000,
    usageFlushMs: options.usageFlushMs,
    onUsageError: (error) => logger.warn("usage_flush_failed", { error }),
  });
  const jwks = options.jwks ?? DEFAULT_JWKS_TIMINGS;
  const authorizer = new Authorizer({
    verifyToken: createTokenVerifier(config.auth, clock, jwks),
    // A JWKS can withdraw a key at any time; a secret or a PEM changes only with a restart.
    cacheMaxAgeMs: config.auth.keyMaterial.kind === "jwks" ? jwks.cacheMaxAgeMs : undefined,
    tenantClaim: config.auth.tenantClaim,
    rolePermissions: config.auth.rolePermissions,
    clock,
    limits: config.rateLimits,
    recordDenial: (denial) => repository.recordDenial(denial),
    logger,
  });
  return { repository, authorizer };
}

function databaseProblem(error: unknown): string {
  if (error instanceof NativeModuleError) {
    return "The server's SQLite module was built for another Node.js version. Ask the operator to run `npm rebuild better-sqlite3` in the api-keys-mcp folder (see the server log) and restart the server.";
  }
  if (error instanceof SchemaTooNewError) {
    return "The key database was written by a newer version of api-keys-mcp. Ask the operator to upgrade api-keys-mcp, or to set API_KEYS_MCP_DB to another file.";
  }
  return "The key database cannot be opened. Ask the operator to check API_KEYS_MCP_DB and the server log, then restart the server.";
}
