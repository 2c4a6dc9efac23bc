import type { ErrorCode } from "../errors.js";
import type { Environment, KeyType } from "../keys/format.js";

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
}

/** Fields to change; an absent field is left alone, `null` clears (description) or means never (expiresAt). */
export interface KeyPatch {
  name?: string;
  description?: string | null;
  expiresAt?: number | null;
}

export const STATUS_FILTERS = ["active", "expired", "revoked", "all"] as const;
export type StatusFilter = (typeof STATUS_FILTERS)[number];

export interface ListKeysQuery {
  limit: number;
  cursor?: string;
  /** Omitted: active and expired keys, not revoked ones. */
  status?: StatusFilter;
  environment?: Environment;
  type?: KeyType;
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
