import { parseApiKey, type Environment, type KeyType } from "./format.js";
import type { KeyRecord } from "./record.js";
import { hashApiKey } from "./secret.js";
import { keyStatus } from "./view.js";

/** What `verify_api_key` answers: a tool call requires no type or environment, so it never refuses for one. */
export const KEY_CHECK_CODES = ["VALID", "MALFORMED", "NOT_FOUND", "EXPIRED", "REVOKED"] as const;

/** What the library's `verify` answers: the tool's codes, and a key of another type or environment than required. */
export const VERIFY_CODES = [...KEY_CHECK_CODES, "WRONG_TYPE", "WRONG_ENVIRONMENT"] as const;
export type VerifyCode = (typeof VERIFY_CODES)[number];

/** What a service requires of a key; absent fields accept any. */
export interface KeyRequirement {
  type?: KeyType;
  environment?: Environment;
}

export type KeyCheck = { code: "MALFORMED" | "NOT_FOUND" } | { code: "VALID" | "EXPIRED" | "REVOKED"; record: KeyRecord };

/**
 * V1 in two halves, so the library's hot path can look the key up without a promise in between.
 * First: the hash to look up, or `undefined` for a key whose shape or checksum is wrong, which
 * is MALFORMED without touching the database.
 */
export function lookupHash(plaintext: string): string | undefined {
  return parseApiKey(plaintext) ? hashApiKey(plaintext) : undefined;
}

/**
 * The first half for a caller with requirements: the hash to look up, or the code answered from
 * the key alone. The prefix tells the type and the environment, and it is part of what is hashed
 * (no key passes under another prefix), so a key of another kind is refused without a lookup:
 * no use counted, nothing said about whether it exists.
 */
export function screenKey(plaintext: string, required: KeyRequirement): { hash: string } | { code: "MALFORMED" | "WRONG_TYPE" | "WRONG_ENVIRONMENT" } {
  const parsed = parseApiKey(plaintext);
  if (!parsed) return { code: "MALFORMED" };
  if (required.type !== undefined && parsed.type !== required.type) return { code: "WRONG_TYPE" };
  if (required.environment !== undefined && parsed.environment !== required.environment) return { code: "WRONG_ENVIRONMENT" };
  return { hash: hashApiKey(plaintext) };
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
