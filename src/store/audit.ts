import type Database from "better-sqlite3";
import { newEventId } from "../keys/ids.js";
import { auditHash, GENESIS_HASH, type ChainedRow } from "./audit-chain.js";

export const AUDIT_ACTIONS = ["api_key.created", "api_key.updated", "api_key.revoked", "api_key.rotated", "auth.denied"] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

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

export interface AuditWriter {
  /** Appends one row. Inside an IMMEDIATE transaction only. */
  append(entry: AuditEntry, occurredAt: number): void;
  /** Must be called as each transaction begins: forgets the chain head remembered from the last. */
  beginTransaction(): void;
}

/**
 * Appends audit rows, chained by hash to the row before. Must run inside an IMMEDIATE
 * transaction: it reads the last hash and appends under the same write lock, so rows from
 * several processes still form one chain, and a change and its record commit or roll back
 * together (S3). The table's triggers refuse UPDATE and DELETE.
 *
 * Within one transaction no other process can append, so after the first row the head of the
 * chain is the hash just written: a batch of mutations reads it from the table once. It is
 * forgotten when the next transaction begins, since another process may append in between (or
 * this transaction may have rolled back).
 */
export function createAuditWriter(db: Database.Database): AuditWriter {
  const lastHash = db.prepare("SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1").pluck();
  // Positional parameters: binding by name looks up every property on every row.
  const insert = db.prepare(
    `INSERT INTO audit_events (event_id, occurred_at, action, outcome, tenant_id, actor, key_id, tool, reason, changes, prev_hash, hash)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  let head: string | undefined;
  return {
    beginTransaction: () => {
      head = undefined;
    },
    append: (entry, occurredAt) => {
      const row: ChainedRow = {
        event_id: newEventId(occurredAt),
        occurred_at: occurredAt,
        action: entry.action,
        outcome: entry.outcome,
        tenant_id: entry.tenantId,
        actor: entry.actor,
        key_id: entry.keyId,
        tool: entry.tool ?? null,
        reason: entry.reason ?? null,
        changes: entry.changes ? JSON.stringify(entry.changes) : null,
      };
      const prevHash = head ?? (lastHash.get() as string | undefined) ?? GENESIS_HASH;
      const hash = auditHash(prevHash, row);
      insert.run(row.event_id, row.occurred_at, row.action, row.outcome, row.tenant_id, row.actor, row.key_id, row.tool, row.reason, row.changes, prevHash, hash);
      head = hash;
    },
  };
}
