import type Database from "better-sqlite3";
import { SchemaTooNewError } from "../schema-too-new.js";
import { MIGRATIONS, type Migration } from "./migrations/index.js";

export { SchemaTooNewError };

/**
 * Brings the schema to the latest version, tracked in `PRAGMA user_version`. Runs under an
 * IMMEDIATE transaction and re-reads the version inside it, so several processes starting on
 * one file at once apply each step exactly once.
 */
export function migrate(db: Database.Database, migrations: readonly Migration[] = MIGRATIONS): { from: number; to: number } {
  const latest = latestVersion(migrations);
  const before = checkSchemaVersion(db, migrations);
  if (before === latest) return { from: before, to: latest };

  return db
    .transaction(() => {
      const from = checkSchemaVersion(db, migrations);
      for (const step of migrations) {
        if (step.version <= from) continue;
        db.exec(step.sql);
        step.run?.(db);
      }
      db.pragma(`user_version = ${latest}`);
      return { from, to: latest };
    })
    .immediate();
}

/** The schema version of `db`; throws `SchemaTooNewError` if this code does not know it. */
export function checkSchemaVersion(db: Database.Database, migrations: readonly Migration[] = MIGRATIONS): number {
  const version = db.pragma("user_version", { simple: true }) as number;
  const latest = latestVersion(migrations);
  if (version > latest) throw new SchemaTooNewError(version, latest);
  return version;
}

function latestVersion(migrations: readonly Migration[]): number {
  return migrations.at(-1)?.version ?? 0;
}
