import type { ErrorCode } from "../errors.js";

export const AUDIT_ACTIONS = [
  "api_key.created",
  "api_key.updated",
  "api_key.revoked",
  "api_key.rotated",
  "auth.denied",
  "api_key.revoke_declined",
  "api_key.rotate_declined",
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

/** Old and new value of each non-secret field a change touched. */
export type Changes = Record<string, { from: unknown; to: unknown }>;

/**
 * The MCP client (the assistant's host) a call came through, as it named itself in `initialize`.
 * Self-declared, so it says which assistant acted, not who: the subject does that.
 */
export interface ClientInfo {
  name: string;
  version: string;
}

/** Who acts, for which tenant. Comes from the verified token, never from tool arguments. */
export interface Actor {
  tenantId: string;
  subject: string;
  /**
   * The client the call came through; null when the server never saw its `initialize`. Required,
   * so that a principal (which has no client) cannot be passed where an actor is meant.
   */
  client: ClientInfo | null;
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
  client?: ClientInfo | null;
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
  client?: ClientInfo | null;
}

/** The user's answer when asked to confirm a change through the client: anything but yes. */
export interface Decline {
  actor: Actor;
  /** What was asked: revoking or rotating the key. */
  change: "revoke" | "rotate";
  keyId: string;
  /** `decline` (the user said no), `cancel` (dismissed), or `no_answer` (the question failed or timed out). */
  answer: "decline" | "cancel" | "no_answer";
  at: number;
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
  client: ClientInfo | null;
}

/** The audit entry of a denial. */
export function denialEntry(denial: Denial): AuditEntry {
  const { tool, reason, tenantId, actor, keyId, omitted } = denial;
  const changes = omitted ? { omitted_denials: { from: null, to: omitted } } : null;
  return { action: "auth.denied", outcome: "denied", tenantId, actor, keyId, tool, reason, changes, client: denial.client ?? null };
}

/**
 * The audit entry of a change the user did not confirm. Nothing changed, so it is recorded as a
 * refused call (outcome `denied`, reason ERR_DECLINED) under an action of its own, never under
 * the action of the change it stopped; `changes` holds only the answer.
 */
export function declineEntry(decline: Decline): AuditEntry {
  const { actor, change, keyId, answer } = decline;
  return {
    action: change === "revoke" ? "api_key.revoke_declined" : "api_key.rotate_declined",
    outcome: "denied",
    tenantId: actor.tenantId,
    actor: actor.subject,
    keyId,
    tool: change === "revoke" ? "delete_api_key" : "rotate_api_key",
    reason: "ERR_DECLINED",
    changes: { confirmation: { from: null, to: answer } },
    client: actor.client ?? null,
  };
}
