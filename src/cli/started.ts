import type { ToolServices } from "../../tools/index.js";
import { describeDatabaseUrl, type Config, type ConfigProblem } from "../config.js";
import { AppError } from "../errors.js";

/**
 * The store part of the `server_started` line, the same for both transports: the database
 * actually in use (a PostgreSQL URL without its password), or null and why there is none.
 */
export function startedStore(config: Config, services: ToolServices | AppError, problems: readonly ConfigProblem[]): Record<string, unknown> {
  const ready = !(services instanceof AppError);
  return {
    // Only the database actually open: with a problem, none is, whatever the settings name.
    database: ready ? (config.databaseUrl !== undefined ? describeDatabaseUrl(config.databaseUrl) : config.dbPath) : null,
    verification: config.auth?.keyMaterial.kind ?? null,
    ready,
    ...(!ready && {
      reason: problems.length > 0 ? "invalid configuration (see config_problem)" : "the database could not be opened (see database_open_failed)",
    }),
  };
}
