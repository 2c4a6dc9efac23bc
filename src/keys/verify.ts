import { parseApiKey } from "./format.js";
import type { KeyRecord } from "./record.js";
import { hashApiKey } from "./secret.js";
import { keyStatus } from "./view.js";

export const VERIFY_CODES = ["VALID", "MALFORMED", "NOT_FOUND", "EXPIRED", "REVOKED"] as const;
export type VerifyCode = (typeof VERIFY_CODES)[number];

export type KeyCheck = { code: "MALFORMED" | "NOT_FOUND" } | { code: "VALID" | "EXPIRED" | "REVOKED"; record: KeyRecord };

/**
 * V1 in two halves, so the library's hot path can look the key up without a promise in between.
 * First: the hash to look up, or `undefined` for a key whose shape or checksum is wrong, which
 * is MALFORMED without touching the database.
 */
export function lookupHash(plaintext: string): string | undefined {
  return parseApiKey(plaintext) ? hashApiKey(plaintext) : undefined;
}

/** Second: the verdict on what the lookup found. With `tenantId`, another tenant's key is NOT_FOUND. */
export function judgeKey(record: KeyRecord | undefined, now: number, tenantId?: string): KeyCheck {
  if (!record || (tenantId !== undefined && record.tenantId !== tenantId)) return { code: "NOT_FOUND" };
  const status = keyStatus(record, now);
  if (status === "revoked") return { code: "REVOKED", record };
  if (status === "expired") return { code: "EXPIRED", record };
  return { code: "VALID", record };
}

/** What the check needs from a store. */
export interface KeyLookup {
  findKeyByHash(hash: string): Promise<KeyRecord | undefined>;
  recordUsage(key: KeyRecord, at: number): void;
}

/**
 * Counts a use of a VALID key, and returns the key as it is after that use: the verdict shows
 * the use it counted, not the key as it was before.
 */
export function countUse(check: KeyCheck, lookup: Pick<KeyLookup, "recordUsage">, now: number): KeyCheck {
  if (check.code !== "VALID") return check;
  lookup.recordUsage(check.record, now);
  const { record } = check;
  return { code: "VALID", record: { ...record, usageCount: record.usageCount + 1, lastUsedAt: Math.max(now, record.lastUsedAt ?? now) } };
}

/**
 * The whole check, as `verify_api_key` makes it through the repository: one indexed lookup by
 * hash, and a VALID key counts one use (batched by the repository, never a write here).
 */
export async function checkApiKey(plaintext: string, lookup: KeyLookup, now: number, tenantId?: string): Promise<KeyCheck> {
  const hash = lookupHash(plaintext);
  if (hash === undefined) return { code: "MALFORMED" };
  return countUse(judgeKey(await lookup.findKeyByHash(hash), now, tenantId), lookup, now);
}
