import type Database from "better-sqlite3";
import type { AuditAction, Changes } from "./audit.js";
import { decodeCursor, toPage } from "./cursor.js";
import type { AuditPage, AuditRecord, ListAuditQuery } from "./repository.js";

type AuditRow = Omit<AuditRecord, "changes"> & { seq: number; changes: string | null };

/**
 * Reads a tenant's audit events (V4): newest first, keyset-paginated on `seq`, one statement per
 * filter combination, prepared once. Events without a tenant (failed authentications) belong
 * to nobody and are never listed.
 */
export class SqliteAuditQuery {
  readonly #db: Database.Database;
  readonly #statements = new Map<string, Database.Statement<Record<string, unknown>, AuditRow>>();

  constructor(db: Database.Database) {
    this.#db = db;
  }

  list(tenantId: string, query: ListAuditQuery): AuditPage {
    const after = query.cursor === undefined ? undefined : decodeCursor("a", query.cursor);
    const rows = this.#statement(query, after !== undefined).all({
      tenantId,
      after,
      keyId: query.keyId,
      action: query.action,
      since: query.since,
      limit: query.limit + 1,
    });
    const { page, nextCursor } = toPage(rows, query.limit, "a", (row) => row.seq);
    return {
      events: page.map(({ seq: _position, changes, ...row }) => ({
        ...row,
        action: row.action as AuditAction,
        changes: changes === null ? null : (JSON.parse(changes) as Changes),
      })),
      nextCursor,
    };
  }

  #statement(query: ListAuditQuery, paged: boolean): Database.Statement<Record<string, unknown>, AuditRow> {
    const filters = [
      paged ? "AND seq < @after" : "",
      query.keyId !== undefined ? "AND key_id = @keyId" : "",
      query.action !== undefined ? "AND action = @action" : "",
      query.since !== undefined ? "AND occurred_at >= @since" : "",
    ];
    const shape = filters.map(Boolean).join("|");
    let statement = this.#statements.get(shape);
    if (!statement) {
      statement = this.#db.prepare(
        `SELECT seq, event_id AS eventId, occurred_at AS occurredAt, action, key_id AS keyId, actor, outcome, reason, changes
         FROM audit_events WHERE tenant_id = @tenantId ${filters.join(" ")}
         ORDER BY seq DESC LIMIT @limit`,
      );
      this.#statements.set(shape, statement);
    }
    return statement;
  }
}
