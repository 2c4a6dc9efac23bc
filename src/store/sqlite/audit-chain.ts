import type Database from "better-sqlite3";
import { auditHash, GENESIS_HASH, verifyChain, type ChainedRow, type ChainVerification, type StoredRow, type VerifyChainOptions } from "../../audit/chain.js";

/** The columns the chain covered when it was introduced (migration 020); later ones are added below. */
const CHAINED_COLUMNS = "event_id, occurred_at, action, outcome, tenant_id, actor, key_id, tool, reason, changes";

/** Checks the whole audit chain of a SQLite database, in log order. Needs the schema of migration 040 or later. */
export function verifySqliteAuditChain(db: Database.Database, options: VerifyChainOptions = {}): ChainVerification {
  const rows = db
    .prepare(`SELECT seq, ${CHAINED_COLUMNS}, client_name, client_version, prev_hash, hash, hash_alg FROM audit_events ORDER BY seq`)
    .iterate() as IterableIterator<StoredRow>;
  return verifyChain(rows, options);
}

/**
 * Chains rows written before the chain existed (migration 020). The table refuses UPDATE, so
 * the trigger is lifted for the duration, inside the migration's transaction.
 */
export function chainExistingRows(db: Database.Database): void {
  db.exec("DROP TRIGGER audit_events_no_update");
  const update = db.prepare("UPDATE audit_events SET prev_hash = ?, hash = ? WHERE seq = ?");
  let previous = GENESIS_HASH;
  for (const row of db.prepare(`SELECT seq, ${CHAINED_COLUMNS} FROM audit_events ORDER BY seq`).all() as (ChainedRow & { seq: number })[]) {
    const next = auditHash(previous, row);
    update.run(previous, next, row.seq);
    previous = next;
  }
  db.exec(`CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END`);
}
