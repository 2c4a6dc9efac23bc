import { verifyPostgresAuditChain } from "../../../src/store/postgres/audit.js";
import { createPool } from "../../../src/store/postgres/pool.js";
import { PostgresKeyRepository } from "../../../src/store/postgres/repository.js";
import { createTestDatabase } from "../../helpers/postgres.js";
import { describeKeyRepositoryContract, T0, type AuditRow, type ContractFixture, type FixtureOptions } from "../../helpers/repository-contract.js";
import { testClock } from "../../helpers/server.js";

/** The repository contract against a real PostgreSQL server, each test in a database of its own. */
async function postgresFixture(options: FixtureOptions = {}): Promise<ContractFixture> {
  const url = await createTestDatabase();
  const pool = createPool(url, { max: 4 });
  const repo = new PostgresKeyRepository(createPool(url, { max: 4 }), { listWindowRows: options.listWindowRows });
  await repo.ready();
  const clock = testClock(T0);
  const targets = {
    "audit insert": "BEFORE INSERT ON audit_events",
    "key insert": "BEFORE INSERT ON api_keys",
    "key update": "BEFORE UPDATE ON api_keys",
    "idempotency insert": "BEFORE INSERT ON idempotency_keys",
  } as const;
  let triggers = 0;
  const others: PostgresKeyRepository[] = [];
  return {
    repo,
    clock,
    async auditRows() {
      const { rows } = await pool.query<Omit<AuditRow, "changes" | "client"> & { changes: string | null; clientName: string | null; clientVersion: string | null }>(
        `SELECT event_id AS "eventId", occurred_at AS "occurredAt", action, outcome, tenant_id AS "tenantId", actor, key_id AS "keyId",
           tool, reason, changes, client_name AS "clientName", client_version AS "clientVersion", prev_hash AS "prevHash", hash
         FROM audit_events ORDER BY seq`,
      );
      return rows.map(({ clientName, clientVersion, prevHash, hash, ...row }) => ({
        ...row,
        changes: row.changes === null ? null : (JSON.parse(row.changes) as AuditRow["changes"]),
        client: clientName === null ? null : { name: clientName, version: clientVersion! },
        prevHash,
        hash,
      }));
    },
    async auditDump() {
      return JSON.stringify((await pool.query("SELECT * FROM audit_events")).rows);
    },
    async keyCount() {
      return Number((await pool.query<{ n: number }>("SELECT count(*)::bigint AS n FROM api_keys")).rows[0]!.n);
    },
    async refuse(write) {
      const name = `refuse_${++triggers}`;
      await pool.query(`CREATE FUNCTION ${name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'forced failure'; END; $$`);
      await pool.query(`CREATE TRIGGER ${name} ${targets[write]} FOR EACH ROW EXECUTE FUNCTION ${name}()`);
      return async () => {
        await pool.query(`DROP TRIGGER ${name} ON ${targets[write].split(" ").at(-1)}`);
        await pool.query(`DROP FUNCTION ${name}()`);
      };
    },
    async another() {
      const other = new PostgresKeyRepository(createPool(url, { max: 4 }), { listWindowRows: options.listWindowRows });
      others.push(other);
      return other;
    },
    async verifyChain() {
      return verifyPostgresAuditChain(pool);
    },
    async close() {
      for (const other of others) await other.close();
      await repo.close();
      await pool.end();
    },
  };
}

describeKeyRepositoryContract("PostgreSQL (embedded server, real migrations)", postgresFixture);
