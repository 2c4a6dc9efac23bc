import type { KeyRecord } from "./record.js";
import { toIso } from "./expiration.js";
import { isoTime } from "./iso-time.js";
import type { Environment, KeyType } from "./format.js";

export const KEY_STATUSES = ["active", "expired", "revoked"] as const;
export type KeyStatus = (typeof KEY_STATUSES)[number];

/** The only shape in which a key is ever shown (T): never a hash, never a plaintext. */
export interface KeyView {
  key_id: string;
  name: string;
  description: string | null;
  type: KeyType;
  environment: Environment;
  prefix: string;
  status: KeyStatus;
  created_at: string;
  updated_at: string;
  expires_at: string | null;
  revoked_at: string | null;
  last_used_at: string | null;
  usage_count: number;
  created_by: string;
  scopes: string[];
  rotated_from: string | null;
  rotated_to: string | null;
}

/** K6: revoked if revoked, else expired once `expires_at <= now`, else active. */
export function keyStatus(record: Pick<KeyRecord, "revokedAt" | "expiresAt">, now: number): KeyStatus {
  if (record.revokedAt !== null) return "revoked";
  if (record.expiresAt !== null && record.expiresAt <= now) return "expired";
  return "active";
}

/** Builds the view field by field, so nothing the record carries besides these can leak out. */
export function toKeyView(record: KeyRecord, now: number): KeyView {
  const createdAt = isoTime(record.createdAt);
  return {
    key_id: record.keyId,
    name: record.name,
    description: record.description,
    type: record.type,
    environment: record.environment,
    prefix: record.prefix,
    status: keyStatus(record, now),
    created_at: createdAt,
    // Most keys are never changed: one string for both (a view is built on every verification).
    updated_at: record.updatedAt === record.createdAt ? createdAt : isoTime(record.updatedAt),
    expires_at: toIso(record.expiresAt),
    revoked_at: toIso(record.revokedAt),
    last_used_at: toIso(record.lastUsedAt),
    usage_count: record.usageCount,
    created_by: record.createdBy,
    scopes: record.scopes,
    rotated_from: record.rotatedFrom,
    rotated_to: record.rotatedTo,
  };
}
