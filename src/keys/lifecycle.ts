import type { Actor, AuditEntry, Changes } from "../audit/events.js";
import { toIso } from "./expiration.js";
import type { KeyPatch, KeyRecord, NewKey, Rotation } from "./record.js";

/**
 * The rules of a key's life, as pure functions of what is stored and the time of the call. Each
 * backend reads the current row inside its transaction, asks one of these what to do, and
 * persists the answer (the new row values and the audit entry) in the same transaction.
 */

/** Why a change to an existing key is refused. */
export type Refusal =
  | { ok: false; reason: "NOT_FOUND" }
  | { ok: false; reason: "REVOKED" }
  /** The key was rotated: it may only stop sooner, never come back or last longer. */
  | { ok: false; reason: "ROTATED"; rotatedTo: string }
  | { ok: false; reason: "ALREADY_ROTATED"; rotatedTo: string };

/** The record of a key as it is inserted, and its `api_key.created` event. */
export function planCreate(actor: Actor, key: NewKey, now: number, rotatedFrom: string | null = null): { record: KeyRecord; audit: AuditEntry } {
  const record: KeyRecord = {
    keyId: key.keyId,
    tenantId: actor.tenantId,
    name: key.name,
    description: key.description,
    type: key.type,
    environment: key.environment,
    prefix: key.prefix,
    createdAt: now,
    updatedAt: now,
    expiresAt: key.expiresAt,
    revokedAt: null,
    lastUsedAt: null,
    usageCount: 0,
    createdBy: actor.subject,
    scopes: key.scopes,
    rotatedFrom,
    rotatedTo: null,
  };
  const changes: Changes = {
    name: { from: null, to: key.name },
    description: { from: null, to: key.description },
    type: { from: null, to: key.type },
    environment: { from: null, to: key.environment },
    prefix: { from: null, to: key.prefix },
    expires_at: { from: null, to: toIso(key.expiresAt) },
    scopes: { from: null, to: key.scopes },
  };
  // The method only, never what was delivered.
  if (key.delivery !== undefined) changes.delivery = { from: null, to: key.delivery };
  return { record, audit: success(actor, "api_key.created", key.keyId, changes) };
}

export type UpdatePlan =
  | Refusal
  | { ok: true; changed: false; key: KeyRecord }
  | { ok: true; changed: true; key: KeyRecord; audit: AuditEntry };

/** Applies the fields that differ; nothing to record when none does. */
export function planUpdate(actor: Actor, current: KeyRecord | undefined, patch: KeyPatch, now: number): UpdatePlan {
  if (!current) return { ok: false, reason: "NOT_FOUND" };
  if (current.revokedAt !== null) return { ok: false, reason: "REVOKED" };
  // A rotated key ends at the end of its grace period (at once for a leaked key): letting an
  // update move that end later would bring a replaced, perhaps leaked, secret back to life.
  if (current.rotatedTo !== null && patch.expiresAt !== undefined && !endsNoLater(patch.expiresAt, current.expiresAt)) {
    return { ok: false, reason: "ROTATED", rotatedTo: current.rotatedTo };
  }

  const changes: Changes = {};
  if (patch.name !== undefined && patch.name !== current.name) changes.name = { from: current.name, to: patch.name };
  if (patch.description !== undefined && patch.description !== current.description) {
    changes.description = { from: current.description, to: patch.description };
  }
  if (patch.expiresAt !== undefined && patch.expiresAt !== current.expiresAt) {
    changes.expires_at = { from: toIso(current.expiresAt), to: toIso(patch.expiresAt) };
  }
  if (patch.scopes !== undefined && patch.scopes.join(" ") !== current.scopes.join(" ")) {
    changes.scopes = { from: current.scopes, to: patch.scopes };
  }
  if (Object.keys(changes).length === 0) return { ok: true, changed: false, key: current };

  const key: KeyRecord = {
    ...current,
    name: patch.name ?? current.name,
    description: patch.description === undefined ? current.description : patch.description,
    expiresAt: patch.expiresAt === undefined ? current.expiresAt : patch.expiresAt,
    scopes: patch.scopes ?? current.scopes,
    updatedAt: now,
  };
  return { ok: true, changed: true, key, audit: success(actor, "api_key.updated", current.keyId, changes) };
}

export type RevokePlan =
  | { ok: false; reason: "NOT_FOUND" }
  | { ok: true; changed: false; key: KeyRecord }
  | { ok: true; changed: true; key: KeyRecord; audit: AuditEntry };

/** Revocation is soft and final; revoking again changes nothing and records nothing. */
export function planRevoke(actor: Actor, current: KeyRecord | undefined, now: number): RevokePlan {
  if (!current) return { ok: false, reason: "NOT_FOUND" };
  if (current.revokedAt !== null) return { ok: true, changed: false, key: current };
  const changes: Changes = { revoked_at: { from: null, to: toIso(now) } };
  return { ok: true, changed: true, key: { ...current, revokedAt: now, updatedAt: now }, audit: success(actor, "api_key.revoked", current.keyId, changes) };
}

export type RotationPlan =
  | Refusal
  | {
      ok: true;
      /** The new key, to insert (linked back to the old one). */
      replacement: NewKey;
      /** The old key as it becomes: ends at now + grace, never later than it would have, linked forward. */
      previous: KeyRecord;
      /** The new key's record as inserted. */
      key: KeyRecord;
      audit: AuditEntry;
    };

/**
 * A new key for the same purpose: same name, description, type, environment and (unless
 * given) scopes; by default the old key's lifetime from now. One event, on the old key, that
 * also records what the new key starts with.
 */
export function planRotation(actor: Actor, old: KeyRecord | undefined, rotation: Rotation, now: number): RotationPlan {
  if (!old) return { ok: false, reason: "NOT_FOUND" };
  if (old.revokedAt !== null) return { ok: false, reason: "REVOKED" };
  if (old.rotatedTo !== null) return { ok: false, reason: "ALREADY_ROTATED", rotatedTo: old.rotatedTo };

  const lifetime = old.expiresAt === null ? null : old.expiresAt - old.createdAt;
  const replacement: NewKey = {
    keyId: rotation.keyId,
    name: old.name,
    description: old.description,
    type: old.type,
    environment: old.environment,
    prefix: rotation.prefix,
    hash: rotation.hash,
    hashVersion: rotation.hashVersion,
    expiresAt: rotation.expiresAt !== undefined ? rotation.expiresAt : lifetime === null ? null : now + lifetime,
    scopes: rotation.scopes ?? old.scopes,
    delivery: rotation.delivery,
  };
  const retiresAt = old.expiresAt === null ? now + rotation.graceMs : Math.min(old.expiresAt, now + rotation.graceMs);
  const key = planCreate(actor, replacement, now, old.keyId).record;
  const changes: Changes = {
    rotated_to: { from: null, to: key.keyId },
    expires_at: { from: toIso(old.expiresAt), to: toIso(retiresAt) },
    replacement: {
      from: null,
      to: {
        key_id: key.keyId,
        prefix: key.prefix,
        expires_at: toIso(key.expiresAt),
        scopes: key.scopes,
        ...(rotation.delivery !== undefined && { delivery: rotation.delivery }),
      },
    },
  };
  return {
    ok: true,
    replacement,
    previous: { ...old, expiresAt: retiresAt, rotatedTo: key.keyId, updatedAt: now },
    key,
    audit: success(actor, "api_key.rotated", old.keyId, changes),
  };
}

/** Whether an expiry `next` ends a key no later than `current` does (`null` is never). */
function endsNoLater(next: number | null, current: number | null): boolean {
  if (current === null) return true;
  return next !== null && next <= current;
}

function success(actor: Actor, action: AuditEntry["action"], keyId: string, changes: Changes): AuditEntry {
  return { action, outcome: "success", tenantId: actor.tenantId, actor: actor.subject, keyId, changes, client: actor.client ?? null };
}
