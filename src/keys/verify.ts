import type { KeyRecord, KeyRepository } from "../store/repository.js";
import { parseApiKey } from "./format.js";
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

/**
 * The whole check, as `verify_api_key` makes it through the repository: one indexed lookup by
 * hash, and a VALID key counts one use (batched by the repository, never a write here).
 */
export async function checkApiKey(
  plaintext: string,
  repository: Pick<KeyRepository, "findKeyByHash" | "recordUsage">,
  now: number,
  tenantId?: string,
): Promise<KeyCheck> {
  const hash = lookupHash(plaintext);
  if (hash === undefined) return { code: "MALFORMED" };
  const check = judgeKey(await repository.findKeyByHash(hash), now, tenantId);
  if (check.code === "VALID") repository.recordUsage(check.record.keyId, now);
  return check;
}
