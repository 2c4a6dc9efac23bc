import type Database from "better-sqlite3";
import { expect } from "vitest";
import { join } from "node:path";
import { verifySqliteAuditChain } from "../../src/store/sqlite/audit-chain.js";
import { openDatabase } from "../../src/store/sqlite/database.js";
import { SqliteKeyRepository } from "../../src/store/sqlite/repository.js";
import { describeKeyRepositoryContract, T0, type AuditRow, type ContractFixture, type FixtureOptions } from "../helpers/repository-contract.js";
import { testClock } from "../helpers/server.js";
import { tempDir } from "../helpers/spawn.js";

/**
 * The repository contract against SQLite with the real migrations, in a temporary file (so that
 * a second repository can open the same store, as a second process would).
 */
async function sqliteFixture(options: FixtureOptions = {}): Promise<ContractFixture> {
  const dir = tempDir();
  const path = join(dir.path, "keys.db");
  const db: Database.Database = openDatabase(path);
  const clock = testClock(T0);
  const repo = new SqliteKeyRepository(db, { listWindowRows: options.listWindowRows });
  const others: SqliteKeyRepository[] = [];
  const targets = {
    "audit insert": "INSERT ON audit_events",
    "key insert": "INSERT ON api_keys",
    "key update": "UPDATE ON api_keys",
    "idempotency insert": "INSERT ON idempotency_keys",
  } as const;
  let triggers = 0;
  return {
    repo,
    clock,
    async auditRows() {
      const rows = db
        .prepare(
          `SELECT event_id AS eventId, occurred_at AS occurredAt, action, outcome, tenant_id AS tenantId, actor, key_id AS keyId,
             tool, reason, changes, client_name AS clientName, client_version AS clientVersion, prev_hash AS prevHash, hash
           FROM audit_events ORDER BY seq`,
        )
        .all() as (Omit<AuditRow, "changes" | "client"> & { changes: string | null; clientName: string | null; clientVersion: string | null })[];
      return rows.map(({ clientName, clientVersion, prevHash, hash, ...row }) => ({
        ...row,
        changes: row.changes === null ? null : (JSON.parse(row.changes) as AuditRow["changes"]),
        client: clientName === null ? null : { name: clientName, version: clientVersion! },
        prevHash,
        hash,
      }));
    },
    async auditDump() {
      return JSON.stringify(db.prepare("SELECT * FROM audit_events").all());
    },
    async keyCount() {
      return db.prepare("SELECT COUNT(*) FROM api_keys").pluck().get() as number;
    },
    async refuse(write) {
      // A TEMP trigger lives only in this connection: the schema on disk is not touched.
      const name = `refuse_${++triggers}`;
      db.exec(`CREATE TEMP TRIGGER ${name} BEFORE ${targets[write]} BEGIN SELECT RAISE(ABORT, 'forced failure'); END`);
      return async () => {
        expect(db.inTransaction).toBe(false);
        db.exec(`DROP TRIGGER temp.${name}`);
      };
    },
    async another() {
      const other = new SqliteKeyRepository(openDatabase(path));
      others.push(other);
      return other;
    },
    async verifyChain() {
      return verifySqliteAuditChain(db);
    },
    async close() {
      for (const other of others) await other.close();
      await repo.close();
      dir.remove();
    },
  };
}

describeKeyRepositoryContract("SQLite (:memory:, real migrations)", sqliteFixture);
