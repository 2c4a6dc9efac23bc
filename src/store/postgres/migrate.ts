import type pg from "pg";
import { SchemaTooNewError } from "../schema-too-new.js";
import { POSTGRES_MIGRATIONS, type PostgresMigration } from "./migrations/index.js";
import { isTransient } from "./pool.js";

/** The advisory lock every instance takes to migrate: one at a time, each step exactly once. */
const MIGRATION_LOCK = 0x61706b6d; // "apkm"

/**
 * Brings the schema to the latest version. One transaction, under a transaction-level advisory
 * lock, re-reading the recorded versions inside it: several instances starting at once migrate
 * exactly once, the others wait and find nothing left to do. A database whose recorded version
 * is newer than this code knows is refused before anything is changed.
 */
export async function migratePostgres(pool: pg.Pool, migrations: readonly PostgresMigration[] = POSTGRES_MIGRATIONS): Promise<{ from: number; to: number }> {
  const latest = migrations.at(-1)?.version ?? 0;
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query("BEGIN");
    await client.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK]);
    await client.query(
      "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    );
    const found = Number((await client.query<{ version: number | null }>("SELECT max(version) AS version FROM schema_migrations")).rows[0]?.version ?? 0);
    if (found > latest) throw new SchemaTooNewError(found, latest, "API_KEYS_MCP_DATABASE_URL");
    for (const step of migrations) {
      if (step.version <= found) continue;
      await client.query(step.sql);
      await step.run?.(client);
      await client.query("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", [step.version, step.name]);
    }
    await client.query("COMMIT");
    return { from: found, to: Math.max(found, latest) };
  } catch (error) {
    // A connection that failed or stopped answering is closed rather than reused (PostgreSQL
    // rolls back what it had begun); otherwise the transaction is rolled back here.
    broken = isTransient(error);
    if (!broken) await client.query("ROLLBACK").catch(() => {});
    throw error;
  } finally {
    client.release(broken);
  }
}
