import type { Actor, AuditAction, AuditRecord, Decline, Denial } from "../audit/events.js";
import type { Environment, KeyType } from "../keys/format.js";
import type { IdempotencyClaim, IdempotencyRecord, IdempotentTool } from "../keys/idempotency.js";
import type { Refusal } from "../keys/lifecycle.js";
import type { KeyPatch, KeyRecord, NewKey, Rotation } from "../keys/record.js";

/**
 * The storage contract, one implementation per backend (SQLite, PostgreSQL). Asynchronous so
 * that a networked backend can implement it; SQLite does each operation as one synchronous
 * transaction inside. Every method is scoped by tenant: a key of another tenant is
 * indistinguishable from a missing one. Expected negatives are values (`{ ok: false, reason }`),
 * turned into coded errors by the tools. Time is the caller's: each call reads the clock once
 * and passes `now`, so every timestamp a call writes and returns is the same instant.
 *
 * Audit events carry `actor.client` (the MCP client, or null) next to the subject.
 *
 * Retries (`idempotency` on createKey and rotateKey): in the write's transaction, before any
 * other check, the backend reads the stored record of (actor's tenant, claim.tool,
 * claim.keyHash), expired or not, and asks `judgeRetry(stored, claim, now)`:
 * - "fresh": it writes the key (or rotation) and its audit event as usual, plus
 *   `recordClaim(tenant, claim, newKeyId, now)` — replacing the expired record of the same
 *   tenant, tool and key hash if there is one — in that same transaction, so a key is never
 *   made without its claim or a claim kept without its key.
 * - "replay" or "conflict": it writes nothing and answers `{ ok: false, reason: "CLAIMED",
 *   record: stored }`; the caller judges the record again to tell which.
 * Every create and rotation that writes a key (with a claim or without) also deletes up to
 * IDEMPOTENCY_SWEEP_LIMIT records of any tenant with `expiresAt <= now`, oldest expiry first,
 * in its transaction: cleanup needs no timer, and no single write pays for a long backlog.
 * Records hold hashes and ids only, never a plaintext key or the caller's idempotency key.
 */
export interface KeyRepository {
  /** Inserts a key and its `api_key.created` audit event, atomically (and the claim, see above). */
  createKey(actor: Actor, key: NewKey, now: number, idempotency?: IdempotencyClaim): Promise<CreateResult>;
  getKey(tenantId: string, keyId: string): Promise<KeyRecord | undefined>;
  /** Newest first, keyset-paginated. Throws ERR_VALIDATION for a cursor it did not issue to this tenant. */
  listKeys(tenantId: string, query: ListKeysQuery): Promise<KeyPage>;
  /** Applies the fields that differ, with one `api_key.updated` event; no event if nothing changed. */
  updateKey(actor: Actor, keyId: string, patch: KeyPatch, now: number): Promise<MutationResult>;
  /** Soft-deletes with one `api_key.revoked` event; revoking again changes nothing. */
  revokeKey(actor: Actor, keyId: string, now: number): Promise<MutationResult>;
  /**
   * Replaces a key with a new one in one transaction with one `api_key.rotated` event (see
   * planRotation). With `idempotency`, the claim is judged before the lifecycle rules: the retry
   * of a rotation that succeeded answers CLAIMED, not ALREADY_ROTATED.
   */
  rotateKey(actor: Actor, keyId: string, rotation: Rotation, now: number, idempotency?: IdempotencyClaim): Promise<RotationResult>;
  /** The stored record of this tenant's claim, expired or not (judgeRetry tells); read before a write to answer a retry early. */
  findIdempotencyRecord(tenantId: string, tool: IdempotentTool, keyHash: string): Promise<IdempotencyRecord | undefined>;
  /** The key with this hash, in any tenant (verification); the caller checks the tenant. */
  findKeyByHash(hash: string): Promise<KeyRecord | undefined>;
  /**
   * Counts one use of a key this repository just returned. Batched: visible to this repository's
   * reads at once, to other instances within about a second.
   */
  recordUsage(key: KeyRecord, at: number): void;
  /** Writes the uses counted so far now, rather than at the next batch. */
  flushUsage(): Promise<void>;
  /** The tenant's audit events, newest first, keyset-paginated. */
  listAuditEvents(tenantId: string, query: ListAuditQuery): Promise<AuditPage>;
  /** Appends an `auth.denied` audit event (never the token). */
  recordDenial(denial: Denial): Promise<void>;
  /** Appends the audit event of a change the user declined to confirm (see declineEntry); changes nothing else. */
  recordDecline(decline: Decline): Promise<void>;
  /** Writes counted uses and releases what the repository holds. */
  close(): Promise<void>;
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
  /** Only keys that expire after `now` and no later than `now` + this many milliseconds. */
  expiresWithinMs?: number;
  /** The time of the call, against which expiry is judged. */
  now: number;
}

/**
 * One page. With filters an index cannot answer alone, a page looks at a bounded number of
 * rows, so it may hold fewer keys than `limit` (even none) while `nextCursor` is not null.
 */
export interface KeyPage {
  keys: KeyRecord[];
  nextCursor: string | null;
}

/** A claim another call already holds (see the idempotency rules above). */
export type Claimed = { ok: false; reason: "CLAIMED"; record: IdempotencyRecord };

export type CreateResult = { ok: true; key: KeyRecord } | Claimed;

export type MutationResult = { ok: true; key: KeyRecord; changed: boolean } | Extract<Refusal, { reason: "NOT_FOUND" | "REVOKED" | "ROTATED" }>;

export type RotationResult =
  | { ok: true; key: KeyRecord; previous: KeyRecord }
  | Extract<Refusal, { reason: "NOT_FOUND" | "REVOKED" | "ALREADY_ROTATED" }>
  | Claimed;

export interface ListAuditQuery {
  limit: number;
  cursor?: string;
  keyId?: string;
  action?: AuditAction;
  /** Only events at or after this instant (epoch milliseconds). */
  since?: number;
}

/** One page of events; like KeyPage, it may be short while `nextCursor` is not null. */
export interface AuditPage {
  events: AuditRecord[];
  nextCursor: string | null;
}
