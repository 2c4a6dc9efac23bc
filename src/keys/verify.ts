import type { KeyRecord, KeyRepository } from "../store/repository.js";
import { parseApiKey } from "./format.js";
import { hashApiKey } from "./secret.js";
import { keyStatus } from "./view.js";

export const VERIFY_CODES = ["VALID", "MALFORMED", "NOT_FOUND", "EXPIRED", "REVOKED"] as const;
export type VerifyCode = (typeof VERIFY_CODES)[number];

export type KeyCheck = { code: "MALFORMED" | "NOT_FOUND" } | { code: "VALID" | "EXPIRED" | "REVOKED"; record: KeyRecord };

/**
 * V1, the one check behind both `verify_api_key` and the `openVerifier` library export. A key
 * whose shape or checksum is wrong is MALFORMED without touching the database; otherwise one
 * indexed lookup by hash. With `tenantId`, a key of another tenant is NOT_FOUND. Only a VALID
 * key counts a use, and that count is batched, not written here.
 */
export async function checkApiKey(
  plaintext: string,
  repository: Pick<KeyRepository, "findKeyByHash" | "recordUsage">,
  now: number,
  tenantId?: string,
): Promise<KeyCheck> {
  if (!parseApiKey(plaintext)) return { code: "MALFORMED" };
  const record = await repository.findKeyByHash(hashApiKey(plaintext));
  if (!record || (tenantId !== undefined && record.tenantId !== tenantId)) return { code: "NOT_FOUND" };
  const status = keyStatus(record, now);
  if (status === "revoked") return { code: "REVOKED", record };
  if (status === "expired") return { code: "EXPIRED", record };
  repository.recordUsage(record.keyId, now);
  return { code: "VALID", record };
}
