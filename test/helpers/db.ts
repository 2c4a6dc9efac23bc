import type Database from "better-sqlite3";

/** Every row of `table`, in insertion order, for before/after comparisons. */
export function rows(db: Database.Database, table: "api_keys" | "audit_events" | "key_usage"): Record<string, unknown>[] {
  return db.prepare(`SELECT * FROM ${table} ORDER BY ${table === "key_usage" ? "key_seq" : "seq"}`).all() as Record<string, unknown>[];
}

/** Audit rows of changes, without refused calls (denials, declined confirmations): the ones a failed call must never add. */
export function changeEvents(db: Database.Database): Record<string, unknown>[] {
  return rows(db, "audit_events").filter((row) => row.outcome === "success");
}

/** Everything stored in the database, as one string, to search for secrets. */
export function dumpDatabase(db: Database.Database): string {
  const tables = db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").pluck().all() as string[];
  return JSON.stringify(tables.map((table) => db.prepare(`SELECT * FROM "${table}"`).all()));
}
