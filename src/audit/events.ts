import type { ErrorCode } from "../errors.js";

export const AUDIT_ACTIONS = ["api_key.created", "api_key.updated", "api_key.revoked", "api_key.rotated", "auth.denied"] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

/** Old and new value of each non-secret field a change touched. */
export type Changes = Record<string, { from: unknown; to: unknown }>;

/** Who acts, for which tenant. Comes from the verified token, never from tool arguments. */
export interface Actor {
  tenantId: string;
  subject: string;
}

/** One audit row to append; the backend adds its id, its time and its place in the hash chain. */
export interface AuditEntry {
  action: AuditAction;
  outcome: "success" | "denied";
  tenantId: string | null;
  actor: string | null;
  keyId: string | null;
  tool?: string | null;
  reason?: string | null;
  changes?: Changes | null;
}

/** A refused call, as the authorizer reports it (never the token). */
export interface Denial {
  tool: string;
  reason: ErrorCode;
  tenantId: string | null;
  actor: string | null;
  keyId: string | null;
  /** When the call was refused (epoch milliseconds). */
  at: number;
  /** Denials of the same caller left out of the log since the last one recorded (they were over its bound). */
  omitted?: number;
}

/** An audit event as listed to a tenant. */
export interface AuditRecord {
  eventId: string;
  occurredAt: number;
  action: AuditAction;
  keyId: string | null;
  actor: string | null;
  outcome: "success" | "denied";
  /** For a denial, the error code the caller got. */
  reason: string | null;
  changes: Changes | null;
}

/** The audit entry of a denial. */
export function denialEntry(denial: Denial): AuditEntry {
  const { tool, reason, tenantId, actor, keyId, omitted } = denial;
  const changes = omitted ? { omitted_denials: { from: null, to: omitted } } : null;
  return { action: "auth.denied", outcome: "denied", tenantId, actor, keyId, tool, reason, changes };
}
