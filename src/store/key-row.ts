import type { KeyRecord, NewKey } from "../keys/record.js";
import type { UsageDelta } from "./usage-batcher.js";

/**
 * The columns of a key as both backends read it, in this order, as an array (cheaper per row
 * than an object on the verification path): the row id first, the usage counts (from their own
 * table, joined as `u`) last.
 */
export const KEY_COLUMNS = `k.seq, k.key_id, k.tenant_id, k.name, k.description, k.type, k.environment, k.prefix, k.created_at,
  k.updated_at, k.expires_at, k.revoked_at, k.created_by, k.scopes, k.rotated_from, k.rotated_to, u.usage_count, u.last_used_at`;

export const KEY_SELECT = `SELECT ${KEY_COLUMNS}`;

/** The key table and its usage counts, as KEY_SELECT names them. */
export const KEY_FROM_WITH_USAGE = "api_keys AS k LEFT JOIN key_usage AS u ON u.key_seq = k.seq";

export type KeyRow = unknown[];

/** The row id of a key row. */
export function rowSeq(row: KeyRow): number {
  return row[0] as number;
}

/** A key row as a `KeyRecord`, with uses counted but not yet written (`pending`) added. */
export function keyFromRow(row: KeyRow, pending: UsageDelta | undefined): KeyRecord {
  const scopes = row[13] as string;
  const storedCount = (row[16] as number | null) ?? 0;
  const storedLastUse = row[17] as number | null;
  return {
    keyId: row[1] as string,
    tenantId: row[2] as string,
    name: row[3] as string,
    description: row[4] as string | null,
    type: row[5] as KeyRecord["type"],
    environment: row[6] as KeyRecord["environment"],
    prefix: row[7] as string,
    createdAt: row[8] as number,
    updatedAt: row[9] as number,
    expiresAt: row[10] as number | null,
    revokedAt: row[11] as number | null,
    lastUsedAt: pending ? Math.max(pending.lastUsedAt, storedLastUse ?? 0) : storedLastUse,
    usageCount: pending ? storedCount + pending.count : storedCount,
    createdBy: row[12] as string,
    scopes: scopes === "[]" ? [] : (JSON.parse(scopes) as string[]),
    rotatedFrom: row[14] as string | null,
    rotatedTo: row[15] as string | null,
  };
}

/** The columns a new key's row is inserted with, in the order of `keyInsertValues`. */
export const KEY_INSERT_COLUMNS =
  "key_id, tenant_id, name, description, type, environment, prefix, key_hash, hash_version, created_at, updated_at, expires_at, created_by, scopes, rotated_from";

/** The values of a new key's row (its record as planned, and the hash it is stored under), in KEY_INSERT_COLUMNS order. */
export function keyInsertValues(record: KeyRecord, key: NewKey): unknown[] {
  return [
    record.keyId,
    record.tenantId,
    record.name,
    record.description,
    record.type,
    record.environment,
    record.prefix,
    key.hash,
    key.hashVersion,
    record.createdAt,
    record.updatedAt,
    record.expiresAt,
    record.createdBy,
    JSON.stringify(record.scopes),
    record.rotatedFrom,
  ];
}
