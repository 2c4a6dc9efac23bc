import type { ErrorCode } from "../errors.js";
import type { Environment, KeyType } from "../keys/format.js";
import type { AuditAction, Changes } from "./audit.js";

/**
 * The storage contract (S5). Asynchronous so that a networked backend (PostgreSQL, phase 3) can
 * implement it; the SQLite implementation does each operation as one synchronous transaction.
 * Every method is scoped by tenant: a key of another tenant is indistinguishable from a missing one.
 * Expected negatives are values (`{ ok: false, reason }`), turned into coded errors by the tools.
 */
export interface KeyRepository {
  /** Inserts a key and its `api_key.created` audit event, atomically. */
  createKey(actor: Actor, key: NewKey): Promise<KeyRecord>;
  getKey(tenantId: string, keyId: string): Promise<KeyRecord | undefined>;
  /** Newest first, keyset-paginated. Throws ERR_VALIDATION for a cursor it did not issue. */
  listKeys(tenantId: string, query: ListKeysQuery): Promise<KeyPage>;
  /** Applies the fields that differ, with one `api_key.updated` event; no event if nothing changed. */
  updateKey(actor: Actor, keyId: string, patch: KeyPatch): Promise<MutationResult>;
  /** Soft-deletes (K7) with one `api_key.revoked` event; revoking again changes nothing. */
  revokeKey(actor: Actor, keyId: string): Promise<MutationResult>;
  /**
   * Replaces a key with a new one (V2) in one transaction with one `api_key.rotated` event: the
   * new key copies name, description, type, environment and (unless given) scopes; the old one
   * expires at now + grace, never later than before; each row names the other.
   */
  rotateKey(actor: Actor, keyId: string, rotation: Rotation): Promise<RotationResult>;
  /** The key with this hash, in any tenant (verification); the caller checks the tenant. */
  findKeyByHash(hash: string): Promise<KeyRecord | undefined>;
  /** Counts one use of a verified key. Batched; visible to other readers within about a second. */
  recordUsage(keyId: string, at: number): void;
  /** The tenant's audit events, newest first, keyset-paginated (V4). */
  listAuditEvents(tenantId: string, query: ListAuditQuery): Promise<AuditPage>;
  /** Appends an `auth.denied` audit event (never the token). */
  recordDenial(denial: Denial): Promise<void>;
  close(): Promise<void>;
}

/** Who acts, and for which tenant. Comes from the verified token, never from tool arguments. */
export interface Actor {
  tenantId: string;
  subject: string;
}

/** A stored key, timestamps in epoch milliseconds (UTC). Never holds the hash or plaintext. */
export interface KeyRecord {
  keyId: string;
  tenantId: string;
  name: string;
  description: string | null;
  type: KeyType;
  environment: Environment;
  prefix: string;
  createdAt: number;
  updatedAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
  lastUsedAt: number | null;
  usageCount: number;
  createdBy: string;
  /** V3: `resource:action` strings, sorted; empty means unrestricted. */
  scopes: string[];
  /** V2: the key this one replaced, and the key that replaced it. */
  rotatedFrom: string | null;
  rotatedTo: string | null;
}

export interface NewKey {
  keyId: string;
  name: string;
  description: string | null;
  type: KeyType;
  environment: Environment;
  prefix: string;
  hash: string;
  hashVersion: number;
  expiresAt: number | null;
  scopes: string[];
}

/** Fields to change; an absent field is left alone, `null` clears (description) or means never (expiresAt). */
export interface KeyPatch {
  name?: string;
  description?: string | null;
  expiresAt?: number | null;
  scopes?: string[];
}

/** The new secret for a rotation, and how the two keys' lives overlap. */
export interface Rotation {
  keyId: string;
  prefix: string;
  hash: string;
  hashVersion: number;
  /** Milliseconds the old key keeps working (0: it stops now). */
  graceMs: number;
  /** The new key's expiry; `undefined` gives it the old key's lifetime (expires_at − created_at) from now. */
  expiresAt?: number | null;
  /** The new key's scopes; `undefined` copies the old key's. */
  scopes?: string[];
}

export type RotationResult =
  | { ok: true; key: KeyRecord; previous: KeyRecord }
  | { ok: false; reason: "NOT_FOUND" }
  | { ok: false; reason: "REVOKED" }
  | { ok: false; reason: "ALREADY_ROTATED"; rotatedTo: string };

export const STATUS_FILTERS = ["active", "expired", "revoked", "all"] as const;
export type StatusFilter = (typeof STATUS_FILTERS)[number];

export interface ListKeysQuery {
  limit: number;
  cursor?: string;
  /** Omitted: active and expired keys, not revoked ones. */
  status?: StatusFilter;
  environment?: Environment;
  type?: KeyType;
  /** V5: only keys that expire after now and no later than now + this many milliseconds. */
  expiresWithinMs?: number;
}

export interface KeyPage {
  keys: KeyRecord[];
  nextCursor: string | null;
}

export type MutationResult =
  | { ok: true; key: KeyRecord; changed: boolean }
  | { ok: false; reason: "NOT_FOUND" | "REVOKED" };

export interface Denial {
  tool: string;
  reason: ErrorCode;
  tenantId: string | null;
  actor: string | null;
  keyId: string | null;
}

export interface ListAuditQuery {
  limit: number;
  cursor?: string;
  keyId?: string;
  action?: AuditAction;
  /** Only events at or after this instant (epoch milliseconds). */
  since?: number;
}

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

export interface AuditPage {
  events: AuditRecord[];
  nextCursor: string | null;
}
