import type Database from "better-sqlite3";
import type { AuditAction, AuditRecord, Changes } from "../../audit/events.js";
import type { CursorCodec } from "../cursor.js";
import { auditListParams, auditPlanShape, cutPage, planAuditList, type AuditWalk } from "../list-plan.js";
import type { AuditPage, ListAuditQuery } from "../repository.js";

type AuditRow = Omit<AuditRecord, "changes" | "client"> & { seq: number; changes: string | null; clientName: string | null; clientVersion: string | null };

const WALKS: Record<AuditWalk, { index: string; where: string }> = {
  tenant: { index: "audit_events_by_tenant", where: "tenant_id = @tenantId" },
  action: { index: "audit_events_by_action", where: "tenant_id = @tenantId AND action = @action" },
  key: { index: "audit_events_by_key", where: "key_id = @keyId" },
};

/** Rows strictly older than a position (time, then place in the log), in a form that bounds an index range on time. */
const BEFORE = "occurred_at <= @beforeTime AND (occurred_at < @beforeTime OR seq < @beforeSeq)";
const ABOVE_FLOOR = "occurred_at >= @floorTime AND (occurred_at > @floorTime OR seq > @floorSeq)";

interface AuditStatements {
  floor?: Database.Statement<Record<string, unknown>, { occurred_at: number; seq: number }>;
  windowed?: Database.Statement<Record<string, unknown>, AuditRow>;
  page: Database.Statement<Record<string, unknown>, AuditRow>;
}

/**
 * Reads a tenant's audit events: newest first by time, keyset-paginated, one statement per
 * plan shape, prepared once (see planAuditList). Events without a tenant (failed
 * authentications) belong to nobody and are never listed.
 */
export class SqliteAuditQuery {
  readonly #db: Database.Database;
  readonly #cursors: CursorCodec;
  readonly #windowRows: number;
  readonly #statements = new Map<string, AuditStatements>();

  constructor(db: Database.Database, cursors: CursorCodec, windowRows: number) {
    this.#db = db;
    this.#cursors = cursors;
    this.#windowRows = windowRows;
  }

  list(tenantId: string, query: ListAuditQuery): AuditPage {
    const before = query.cursor === undefined ? undefined : this.#cursors.decode("a", tenantId, query.cursor);
    const plan = planAuditList(query);
    const statements = this.#statement(plan, before !== undefined, query.since !== undefined);
    const params = auditListParams(tenantId, query, before, this.#windowRows);
    const floor = statements.floor?.get(params);
    const rows = floor === undefined ? statements.page.all(params) : statements.windowed!.all({ ...params, floorTime: floor.occurred_at, floorSeq: floor.seq });
    const { rows: page, next } = cutPage(rows, query.limit, (last) => [last.occurredAt, last.seq], floor === undefined ? undefined : [floor.occurred_at, floor.seq + 1]);
    return {
      events: page.map(({ seq: _position, changes, clientName, clientVersion, ...row }) => ({
        ...row,
        action: row.action as AuditAction,
        changes: changes === null ? null : (JSON.parse(changes) as Changes),
        client: clientName === null ? null : { name: clientName, version: clientVersion ?? "" },
      })),
      nextCursor: next === undefined ? null : this.#cursors.encode("a", tenantId, next),
    };
  }

  #statement(plan: ReturnType<typeof planAuditList>, paged: boolean, since: boolean): AuditStatements {
    const shape = auditPlanShape(plan, paged, since);
    let statements = this.#statements.get(shape);
    if (!statements) {
      const walk = WALKS[plan.walk];
      const walked = `audit_events INDEXED BY ${walk.index}`;
      const range = [walk.where, paged ? BEFORE : "", since ? "occurred_at >= @since" : ""].filter(Boolean);
      const residual = [plan.residual.tenant ? "tenant_id = @tenantId" : "", plan.residual.action ? "action = @action" : ""].filter(Boolean);
      const page = (bounded: boolean) =>
        this.#db.prepare<Record<string, unknown>, AuditRow>(
          `SELECT seq, event_id AS eventId, occurred_at AS occurredAt, action, key_id AS keyId, actor, outcome, reason, changes,
             client_name AS clientName, client_version AS clientVersion
           FROM ${walked} WHERE ${[...range, ...residual, ...(bounded ? [ABOVE_FLOOR] : [])].join(" AND ")}
           ORDER BY occurred_at DESC, seq DESC LIMIT @limit`,
        );
      statements = { page: page(false) };
      if (plan.windowed) {
        statements.floor = this.#db.prepare(
          `SELECT occurred_at, seq FROM ${walked} WHERE ${range.join(" AND ")} ORDER BY occurred_at DESC, seq DESC LIMIT 1 OFFSET @skip`,
        );
        statements.windowed = page(true);
      }
      this.#statements.set(shape, statements);
    }
    return statements;
  }
}
