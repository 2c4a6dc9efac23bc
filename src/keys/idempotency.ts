import { hash } from "node:crypto";
import type { DeliveryMethod } from "./record.js";

/**
 * Retries of the calls that make a key (create, rotate). A client that lost the answer to a call
 * sends it again with the same idempotency key; within IDEMPOTENCY_TTL_MS it gets the key the
 * first call made (its details, never its secret again) instead of a second key. The rules live
 * here, as pure functions; each backend stores the records and applies them in the write's own
 * transaction.
 */

/** How long a retry is recognised. */
export const IDEMPOTENCY_TTL_MS = 24 * 3_600_000;

/**
 * Expired records a write deletes, at most. Cleanup rides on writes that record a claim, a bounded
 * amount each time, so no timer is needed and no write pays for a long backlog at once.
 */
export const IDEMPOTENCY_SWEEP_LIMIT = 100;

export const IDEMPOTENT_TOOLS = ["create_api_key", "rotate_api_key"] as const;
export type IdempotentTool = (typeof IDEMPOTENT_TOOLS)[number];

/** What a call claims with its idempotency key. Idempotency keys are scoped per tenant and per tool. */
export interface IdempotencyClaim {
  tool: IdempotentTool;
  /** SHA-256 (hex) of the caller's idempotency key: the key itself is never stored. */
  keyHash: string;
  /** SHA-256 (hex) of the call's normalised arguments (see fingerprintArguments). */
  fingerprint: string;
  /** How the first call delivered the key, for the answer to a retry. */
  delivery: DeliveryMethod;
}

/** A claim as stored, with the key it made (for a rotation, the new key) and until when it holds. */
export interface IdempotencyRecord extends IdempotencyClaim {
  tenantId: string;
  keyId: string;
  createdAt: number;
  expiresAt: number;
}

/** The claim of a call: its idempotency key, hashed, and the fingerprint of its arguments. */
export function idempotencyClaim(tool: IdempotentTool, idempotencyKey: string, args: Record<string, unknown>, delivery: DeliveryMethod): IdempotencyClaim {
  return { tool, keyHash: hash("sha256", idempotencyKey, "hex"), fingerprint: fingerprintArguments(tool, args), delivery };
}

/**
 * SHA-256 of the tool name and the arguments as canonical JSON (object members sorted, undefined
 * members left out). The caller normalises first (defaults applied, scopes sorted, a date-time as
 * an instant, a recipient key by its thumbprint), so that two spellings of the same request match.
 * Relative values stay as written: "30d" asked twice a minute apart is the same request.
 */
export function fingerprintArguments(tool: IdempotentTool, args: Record<string, unknown>): string {
  return hash("sha256", canonicalJson({ tool, args }), "hex");
}

/**
 * An expiration as the fingerprint sees it: a word ("30d") as written, a date-time as the
 * instant it names, so "2027-01-01T01:00:00+01:00" and "2027-01-01T00:00:00Z" are one request.
 */
export function expirationForFingerprint(input: string): string {
  const at = /^\d{4}-/.test(input) ? Date.parse(input) : Number.NaN;
  return Number.isNaN(at) ? input : new Date(at).toISOString();
}

/** The record a fresh claim leaves, for the key it made. */
export function recordClaim(tenantId: string, claim: IdempotencyClaim, keyId: string, now: number): IdempotencyRecord {
  return { ...claim, tenantId, keyId, createdAt: now, expiresAt: now + IDEMPOTENCY_TTL_MS };
}

export type RetryVerdict =
  /** No live record: make the key, and record the claim with it. */
  | { kind: "fresh" }
  /** The same request again: answer with the key it made, and make nothing. */
  | { kind: "replay"; record: IdempotencyRecord }
  /** The same idempotency key with other arguments: refuse (ERR_CONFLICT). */
  | { kind: "conflict"; record: IdempotencyRecord };

/** What a claim meets in the store (the record of this tenant, tool and key, if any). */
export function judgeRetry(stored: IdempotencyRecord | undefined, claim: IdempotencyClaim, now: number): RetryVerdict {
  if (stored === undefined || stored.expiresAt <= now) return { kind: "fresh" };
  if (stored.tool !== claim.tool || stored.keyHash !== claim.keyHash) throw new TypeError("judgeRetry: the record belongs to another claim");
  return stored.fingerprint === claim.fingerprint ? { kind: "replay", record: stored } : { kind: "conflict", record: stored };
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((item) => (item === undefined ? "null" : canonicalJson(item))).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const members = Object.entries(value as Record<string, unknown>)
      .filter(([, member]) => member !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([name, member]) => `${JSON.stringify(name)}:${canonicalJson(member)}`);
    return `{${members.join(",")}}`;
  }
  return JSON.stringify(value);
}
