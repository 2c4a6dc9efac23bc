import type { AuditAction } from "../audit/events.js";
import type { Environment, KeyType } from "../keys/format.js";
import type { ListAuditQuery, ListKeysQuery } from "./repository.js";

/**
 * How a listing is read, decided once for both backends. A listing walks one index in page
 * order; what that index does not answer is checked row by row, and then a page looks at no
 * more than `LIST_WINDOW_ROWS` index entries: a filter that matches rarely (or never) costs a
 * bounded amount per call instead of a scan of the tenant's rows, and the cursor resumes below
 * the rows already looked at.
 */
export const LIST_WINDOW_ROWS = 2000;

/** The seq-ordered key indexes a listing can walk, each with the condition it answers. */
export type KeyWalk = "tenant" | "unrevoked" | "revoked" | "environment" | "type";

/** Expiry conditions: none can be an index condition in page order, so they are always residual. */
export type ExpiryCondition = "unexpired" | "expired" | "within";

export interface KeyListPlan {
  walk: KeyWalk;
  /** Conditions the walked index does not answer. */
  residual: {
    revoked?: boolean;
    environment?: Environment;
    type?: KeyType;
    expiry: ExpiryCondition[];
  };
  /** Whether rows are checked one by one, so that the page needs a window. */
  windowed: boolean;
}

export function planKeyList(query: Pick<ListKeysQuery, "status" | "environment" | "type" | "expiresWithinMs">): KeyListPlan {
  const status = query.status ?? "default";
  const revoked = status === "all" ? undefined : status === "revoked";
  const expiry: ExpiryCondition[] = [];
  if (status === "active") expiry.push("unexpired");
  if (status === "expired") expiry.push("expired");
  if (query.expiresWithinMs !== undefined) expiry.push("within");

  const walk: KeyWalk =
    revoked === true ? "revoked" : query.environment ? "environment" : query.type ? "type" : revoked === false ? "unrevoked" : "tenant";
  const residual: KeyListPlan["residual"] = { expiry };
  if (revoked !== undefined && walk !== "revoked" && walk !== "unrevoked") residual.revoked = revoked;
  if (query.environment && walk !== "environment") residual.environment = query.environment;
  if (query.type && walk !== "type") residual.type = query.type;
  const windowed = expiry.length > 0 || residual.revoked !== undefined || residual.environment !== undefined || residual.type !== undefined;
  return { walk, residual, windowed };
}

/** A stable name for a plan's shape, to cache one prepared statement per shape. */
export function keyPlanShape(plan: KeyListPlan, paged: boolean): string {
  const r = plan.residual;
  return [plan.walk, paged, r.revoked, r.environment !== undefined, r.type !== undefined, ...r.expiry].join("|");
}

/** The time-ordered audit indexes a listing can walk. */
export type AuditWalk = "tenant" | "action" | "key";

export interface AuditListPlan {
  walk: AuditWalk;
  /** Conditions the walked index does not answer: the tenant (walking a key's events), the action. */
  residual: { tenant: boolean; action?: AuditAction };
  windowed: boolean;
}

/**
 * Audit events are listed newest first by time (`occurred_at`, then their place in the log), so
 * that `since` is a range on every audit index: a `since` in the future finds nothing at once.
 */
export function planAuditList(query: Pick<ListAuditQuery, "keyId" | "action">): AuditListPlan {
  if (query.keyId !== undefined) {
    return { walk: "key", residual: { tenant: true, ...(query.action ? { action: query.action } : {}) }, windowed: true };
  }
  return { walk: query.action ? "action" : "tenant", residual: { tenant: false }, windowed: false };
}

export function auditPlanShape(plan: AuditListPlan, paged: boolean, since: boolean): string {
  return [plan.walk, paged, since, plan.residual.action !== undefined].join("|");
}

/**
 * The named parameters of a key listing's statements, the same for both backends: `after` is the
 * cursor's position, and one row more than `limit` is read to tell whether another page follows.
 */
export function keyListParams(tenantId: string, query: ListKeysQuery, after: number | undefined, windowRows: number): Record<string, unknown> {
  return {
    tenantId,
    after,
    environment: query.environment,
    type: query.type,
    now: query.now,
    horizon: query.expiresWithinMs === undefined ? undefined : query.now + query.expiresWithinMs,
    skip: windowRows,
    limit: query.limit + 1,
  };
}

/** The named parameters of an audit listing's statements; `before` is the cursor's (time, seq). */
export function auditListParams(tenantId: string, query: ListAuditQuery, before: readonly number[] | undefined, windowRows: number): Record<string, unknown> {
  return {
    tenantId,
    keyId: query.keyId,
    action: query.action,
    since: query.since,
    beforeTime: before?.[0],
    beforeSeq: before?.[1],
    skip: windowRows,
    limit: query.limit + 1,
  };
}

/**
 * A page from the rows read (one more than `limit` when another page follows), and the position
 * the next page starts from: after its last row, or, when the window ran out before the page
 * filled, `resume` (the first entry beyond the window); none when the listing is done.
 */
export function cutPage<Row>(rows: Row[], limit: number, positionOf: (row: Row) => readonly number[], resume: readonly number[] | undefined): { rows: Row[]; next: readonly number[] | undefined } {
  if (rows.length > limit) return { rows: rows.slice(0, limit), next: positionOf(rows[limit - 1]!) };
  return { rows, next: resume };
}
