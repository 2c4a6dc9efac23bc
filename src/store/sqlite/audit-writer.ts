import type Database from "better-sqlite3";
import { AUDIT_INSERT_COLUMNS, auditHash, auditInsertValues, chainedRow, GENESIS_HASH } from "../../audit/chain.js";
import type { AuditEntry } from "../../audit/events.js";

export interface AuditWriter {
  /** Appends one row. Inside an IMMEDIATE transaction only. */
  append(entry: AuditEntry, occurredAt: number): void;
  /** Must be called as each transaction begins: forgets the chain head remembered from the last. */
  beginTransaction(): void;
}

/**
 * Appends audit rows, chained by hash to the row before (an HMAC under `auditKey` when the
 * operator set one). Must run inside an IMMEDIATE transaction: it reads the last hash and
 * appends under the same write lock, so rows from several processes still form one chain, and
 * a change and its record commit or roll back together. The table's triggers refuse UPDATE,
 * DELETE and any INSERT that would replace a row.
 *
 * Within one transaction no other process can append, so after the first row the head of the
 * chain is the hash just written: a batch of mutations reads it from the table once. It is
 * forgotten when the next transaction begins, since another process may append in between (or
 * this transaction may have rolled back).
 */
export function createAuditWriter(db: Database.Database, auditKey?: Uint8Array): AuditWriter {
  const lastHash = db.prepare("SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1").pluck();
  const algorithm = auditKey ? "hmac-sha256" : "sha256";
  // Positional parameters: binding by name looks up every property on every row.
  const insert = db.prepare(`INSERT INTO audit_events (${AUDIT_INSERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
  let head: string | undefined;
  return {
    beginTransaction: () => {
      head = undefined;
    },
    append: (entry, occurredAt) => {
      const row = chainedRow(entry, occurredAt);
      const prevHash = head ?? (lastHash.get() as string | undefined) ?? GENESIS_HASH;
      const hash = auditHash(prevHash, row, auditKey);
      insert.run(...auditInsertValues(row, prevHash, hash, algorithm));
      head = hash;
    },
  };
}
