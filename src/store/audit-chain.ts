import { hash } from "node:crypto";
import type Database from "better-sqlite3";

/** The `prev_hash` of the first row. */
export const GENESIS_HASH = "0".repeat(64);

/** The columns an audit row's hash covers (all but `seq` and the two hash columns). */
export interface ChainedRow {
  event_id: string;
  occurred_at: number;
  action: string;
  outcome: string;
  tenant_id: string | null;
  actor: string | null;
  key_id: string | null;
  tool: string | null;
  reason: string | null;
  changes: string | null;
}

/**
 * Tamper evidence (S4): each row's hash is the SHA-256 of the previous row's hash and the row's
 * own content, so changing, removing or reordering any row breaks every hash after it. One hash
 * per appended row. (Cutting rows off the end is only visible against a head hash kept elsewhere:
 * `audit verify` prints it.)
 */
export function auditHash(prevHash: string, row: ChainedRow): string {
  const content = JSON.stringify([
    row.event_id,
    row.occurred_at,
    row.action,
    row.outcome,
    row.tenant_id,
    row.actor,
    row.key_id,
    row.tool,
    row.reason,
    row.changes,
  ]);
  return hash("sha256", `${prevHash}\n${content}`, "hex");
}

export type ChainVerification =
  | { ok: true; rows: number; head: string }
  | { ok: false; rows: number; seq: number; eventId: string; problem: string };

const ROWS = `SELECT seq, event_id, occurred_at, action, outcome, tenant_id, actor, key_id, tool, reason, changes, prev_hash, hash
  FROM audit_events ORDER BY seq`;

/** An audit row as stored: the chained columns, its position and its two hashes. */
export type StoredRow = ChainedRow & { seq: number; prev_hash: string; hash: string };

/** Walks the whole chain in order; stops at the first row that does not verify. */
export function verifyAuditChain(db: Database.Database): ChainVerification {
  let previous = GENESIS_HASH;
  let rows = 0;
  for (const row of db.prepare(ROWS).iterate() as IterableIterator<StoredRow>) {
    rows += 1;
    if (row.prev_hash !== previous) {
      return { ok: false, rows, seq: row.seq, eventId: row.event_id, problem: "its prev_hash does not match the row before it (a row was removed, inserted or reordered)" };
    }
    if (auditHash(previous, row) !== row.hash) {
      return { ok: false, rows, seq: row.seq, eventId: row.event_id, problem: "its content does not match its hash (the row was changed)" };
    }
    previous = row.hash;
  }
  return { ok: true, rows, head: previous };
}

/**
 * Chains rows written before the chain existed (migration 020). The table refuses UPDATE, so
 * the trigger is lifted for the duration, inside the migration's transaction.
 */
export function chainExistingRows(db: Database.Database): void {
  db.exec("DROP TRIGGER audit_events_no_update");
  const update = db.prepare("UPDATE audit_events SET prev_hash = ?, hash = ? WHERE seq = ?");
  let previous = GENESIS_HASH;
  for (const row of db.prepare(ROWS).all() as StoredRow[]) {
    const next = auditHash(previous, row);
    update.run(previous, next, row.seq);
    previous = next;
  }
  db.exec(`CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END`);
}
