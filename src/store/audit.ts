import type Database from "better-sqlite3";
import { newEventId } from "../keys/ids.js";

export type AuditAction = "api_key.created" | "api_key.updated" | "api_key.revoked" | "auth.denied";

/** Old and new value of each non-secret field a change touched. */
export type Changes = Record<string, { from: unknown; to: unknown }>;

export interface AuditEntry {
  action: AuditAction;
  outcome: "success" | "denied";
  tenantId: string | null;
  actor: string | null;
  keyId: string | null;
  tool?: string | null;
  reason?: string | null;
  changes?: Changes | null;
}

/**
 * Appends audit rows. Mutations call it inside their own transaction, so a change and its
 * record commit or roll back together (S3). The table's triggers refuse UPDATE and DELETE.
 */
export function createAuditWriter(db: Database.Database): (entry: AuditEntry, occurredAt: number) => void {
  const insert = db.prepare(
    `INSERT INTO audit_events (event_id, occurred_at, action, outcome, tenant_id, actor, key_id, tool, reason, changes)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  return (entry, occurredAt) => {
    insert.run(
      newEventId(),
      occurredAt,
      entry.action,
      entry.outcome,
      entry.tenantId,
      entry.actor,
      entry.keyId,
      entry.tool ?? null,
      entry.reason ?? null,
      entry.changes ? JSON.stringify(entry.changes) : null,
    );
  };
}
