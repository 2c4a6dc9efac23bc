import type pg from "pg";
import { AUDIT_INSERT_COLUMNS, auditHash, auditInsertValues, chainedRow, createChainVerifier, type ChainVerification, type StoredRow, type VerifyChainOptions } from "../../audit/chain.js";
import type { AuditAction, AuditEntry, AuditRecord, Changes } from "../../audit/events.js";
import type { CursorCodec } from "../cursor.js";
import { auditListParams, auditPlanShape, cutPage, planAuditList, type AuditWalk } from "../list-plan.js";
import type { AuditPage, ListAuditQuery } from "../repository.js";
import { compile, type Compiled } from "./sql.js";

/**
 * Appends one audit row, chained to the row before it. The head row is locked first, so appends
 * from every instance queue on it: each reads the hash the one before it wrote, and the chain
 * stays one line (locking the newest audit row would not do: two appends could both read it and
 * fork the chain). Inside the caller's transaction, last, so the lock is held only until commit.
 */
export async function appendAudit(client: pg.PoolClient, entry: AuditEntry, occurredAt: number, auditKey: Uint8Array | undefined): Promise<void> {
  const head = await client.query<{ hash: string }>({ name: "audit_head_lock", text: "SELECT hash FROM audit_head WHERE id = 1 FOR UPDATE" });
  const prevHash = head.rows[0]!.hash;
  const row = chainedRow(entry, occurredAt);
  const hash = auditHash(prevHash, row, auditKey);
  // The head moves to the new row in the same statement.
  await client.query({
    name: "audit_append",
    text: `WITH appended AS (
             INSERT INTO audit_events (${AUDIT_INSERT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
           )
           UPDATE audit_head SET hash = $14 WHERE id = 1`,
    values: auditInsertValues(row, prevHash, hash, auditKey ? "hmac-sha256" : "sha256"),
  });
}

const WALKS: Record<AuditWalk, string> = {
  tenant: "tenant_id = @tenantId",
  action: "tenant_id = @tenantId AND action = @action",
  key: "key_id = @keyId",
};
const BEFORE = "occurred_at <= @beforeTime AND (occurred_at < @beforeTime OR seq < @beforeSeq)";
const ABOVE_FLOOR = "occurred_at >= @floorTime AND (occurred_at > @floorTime OR seq > @floorSeq)";

interface AuditStatements {
  floor?: Compiled;
  windowed?: Compiled;
  page: Compiled;
}

type AuditRow = [number, string, number, string, string | null, string | null, string, string | null, string | null, string | null, string | null];

/** Reads a tenant's audit events, as the SQLite backend does (see planAuditList). */
export class PostgresAuditQuery {
  readonly #pool: pg.Pool;
  readonly #cursors: () => CursorCodec;
  readonly #windowRows: number;
  readonly #statements = new Map<string, AuditStatements>();

  constructor(pool: pg.Pool, cursors: () => CursorCodec, windowRows: number) {
    this.#pool = pool;
    this.#cursors = cursors;
    this.#windowRows = windowRows;
  }

  async list(tenantId: string, query: ListAuditQuery): Promise<AuditPage> {
    const cursors = this.#cursors();
    const before = query.cursor === undefined ? undefined : cursors.decode("a", tenantId, query.cursor);
    const plan = planAuditList(query);
    const statements = this.#statement(plan, before !== undefined, query.since !== undefined);
    const params = auditListParams(tenantId, query, before, this.#windowRows);
    let floor: [number, number] | undefined;
    if (statements.floor) {
      const found = await this.#pool.query<[number, number]>({ ...statements.floor.query(params), rowMode: "array" });
      floor = found.rows[0];
    }
    const page = floor === undefined ? statements.page : statements.windowed!;
    const rows = (await this.#pool.query<AuditRow>({ ...page.query({ ...params, floorTime: floor?.[0], floorSeq: floor?.[1] }), rowMode: "array" })).rows;
    const { rows: kept, next } = cutPage(rows, query.limit, (last) => [last[2], last[0]], floor === undefined ? undefined : [floor[0], floor[1] + 1]);
    return {
      events: kept.map(([, eventId, occurredAt, action, keyId, actor, outcome, reason, changes, clientName, clientVersion]): AuditRecord => ({
        eventId,
        occurredAt,
        action: action as AuditAction,
        keyId,
        actor,
        outcome: outcome as AuditRecord["outcome"],
        reason,
        changes: changes === null ? null : (JSON.parse(changes) as Changes),
        client: clientName === null ? null : { name: clientName, version: clientVersion ?? "" },
      })),
      nextCursor: next === undefined ? null : cursors.encode("a", tenantId, next),
    };
  }

  #statement(plan: ReturnType<typeof planAuditList>, paged: boolean, since: boolean): AuditStatements {
    const shape = auditPlanShape(plan, paged, since);
    let statements = this.#statements.get(shape);
    if (!statements) {
      const range = [WALKS[plan.walk], paged ? BEFORE : "", since ? "occurred_at >= @since" : ""].filter(Boolean);
      const residual = [plan.residual.tenant ? "tenant_id = @tenantId" : "", plan.residual.action ? "action = @action" : ""].filter(Boolean);
      const page = (bounded: boolean, name: string) =>
        compile(
          `audit_${name}`,
          `SELECT seq, event_id, occurred_at, action, key_id, actor, outcome, reason, changes, client_name, client_version FROM audit_events
           WHERE ${[...range, ...residual, ...(bounded ? [ABOVE_FLOOR] : [])].join(" AND ")}
           ORDER BY occurred_at DESC, seq DESC LIMIT @limit`,
        );
      statements = { page: page(false, "page") };
      if (plan.windowed) {
        statements.floor = compile(
          "audit_floor",
          `SELECT occurred_at, seq FROM audit_events WHERE ${range.join(" AND ")} ORDER BY occurred_at DESC, seq DESC LIMIT 1 OFFSET @skip`,
        );
        statements.windowed = page(true, "windowed");
      }
      this.#statements.set(shape, statements);
    }
    return statements;
  }
}

/** Rows read per round trip while checking the chain: memory stays bounded whatever its length. */
const VERIFY_BATCH_ROWS = 5000;

/** Checks the whole audit chain of a PostgreSQL database, in log order. */
export async function verifyPostgresAuditChain(pool: pg.Pool, options: VerifyChainOptions = {}): Promise<ChainVerification> {
  const verifier = createChainVerifier(options);
  let after = 0;
  for (;;) {
    const { rows } = await pool.query<StoredRow>(
      `SELECT seq, event_id, occurred_at, action, outcome, tenant_id, actor, key_id, tool, reason, changes, client_name, client_version, prev_hash, hash, hash_alg
       FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2`,
      [after, VERIFY_BATCH_ROWS],
    );
    for (const row of rows) {
      const broken = verifier.add(row);
      if (broken) return broken;
    }
    if (rows.length < VERIFY_BATCH_ROWS) return verifier.finish();
    after = rows.at(-1)!.seq;
  }
}
