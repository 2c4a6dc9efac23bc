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
