import type Database from "better-sqlite3";

/** Every row of `table`, in insertion order, for before/after comparisons. */
export function rows(db: Database.Database, table: "api_keys" | "audit_events"): Record<string, unknown>[] {
  return db.prepare(`SELECT * FROM ${table} ORDER BY seq`).all() as Record<string, unknown>[];
}

/** Audit rows other than denials: the ones a failed call must never add. */
export function changeEvents(db: Database.Database): Record<string, unknown>[] {
  return rows(db, "audit_events").filter((row) => row.action !== "auth.denied");
}

/** Everything stored in the database, as one string, to search for secrets. */
export function dumpDatabase(db: Database.Database): string {
  return JSON.stringify([rows(db, "api_keys"), rows(db, "audit_events")]);
}
