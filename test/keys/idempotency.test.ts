import { describe, expect, it } from "vitest";
import {
  expirationForFingerprint,
  fingerprintArguments,
  idempotencyClaim,
  IDEMPOTENCY_TTL_MS,
  judgeRetry,
  recordClaim,
} from "../../src/keys/idempotency.js";

const NOW = Date.UTC(2030, 0, 1);

describe("idempotency rules", () => {
  it("fingerprints the normalised arguments: member order and absent members do not matter, values and the tool do", () => {
    const base = fingerprintArguments("create_api_key", { name: "checkout", scopes: ["a:b"], expiration: "30d", description: undefined });
    expect(fingerprintArguments("create_api_key", { expiration: "30d", scopes: ["a:b"], name: "checkout" })).toBe(base);
    expect(base).toMatch(/^[0-9a-f]{64}$/);
    for (const other of [
      fingerprintArguments("rotate_api_key", { name: "checkout", scopes: ["a:b"], expiration: "30d" }),
      fingerprintArguments("create_api_key", { name: "checkout", scopes: ["a:b"], expiration: "90d" }),
      fingerprintArguments("create_api_key", { name: "checkout", scopes: [], expiration: "30d" }),
      fingerprintArguments("create_api_key", { name: "checkout", scopes: ["a:b"], expiration: "30d", description: null }),
      fingerprintArguments("create_api_key", { name: "checkout", scopes: ["a:b"], expiration: "30d", delivery: { encrypt_to: "thumbprint" } }),
    ]) {
      expect(other).not.toBe(base);
    }
    // Nested objects are canonical too.
    expect(fingerprintArguments("create_api_key", { delivery: { a: 1, b: 2 } })).toBe(fingerprintArguments("create_api_key", { delivery: { b: 2, a: 1 } }));
  });

  it("never keeps the idempotency key itself: the claim holds its SHA-256", () => {
    const claim = idempotencyClaim("create_api_key", "order-4711-retry", { name: "x" }, "inline");
    expect(JSON.stringify(claim)).not.toContain("order-4711");
    expect(claim.keyHash).toMatch(/^[0-9a-f]{64}$/);
    expect(idempotencyClaim("create_api_key", "order-4711-retry", { name: "x" }, "inline")).toEqual(claim);
  });

  it("keeps a record for 24 hours from the call that made the key", () => {
    const claim = idempotencyClaim("create_api_key", "k", { name: "x" }, "file");
    expect(recordClaim("merchant_a", claim, "key_AAAAAAAAAAAAAAAAAAAA", NOW)).toEqual({
      ...claim,
      tenantId: "merchant_a",
      keyId: "key_AAAAAAAAAAAAAAAAAAAA",
      createdAt: NOW,
      expiresAt: NOW + IDEMPOTENCY_TTL_MS,
    });
  });

  it("judges a retry: fresh without a live record, replay for the same arguments, conflict for others", () => {
    const claim = idempotencyClaim("create_api_key", "k", { name: "x" }, "inline");
    const stored = recordClaim("merchant_a", claim, "key_AAAAAAAAAAAAAAAAAAAA", NOW);
    expect(judgeRetry(undefined, claim, NOW)).toEqual({ kind: "fresh" });
    expect(judgeRetry(stored, claim, NOW + IDEMPOTENCY_TTL_MS - 1)).toEqual({ kind: "replay", record: stored });
    expect(judgeRetry(stored, claim, NOW + IDEMPOTENCY_TTL_MS)).toEqual({ kind: "fresh" });
    const other = idempotencyClaim("create_api_key", "k", { name: "y" }, "inline");
    expect(judgeRetry(stored, other, NOW + 1)).toEqual({ kind: "conflict", record: stored });
    // The fingerprint decides; the claim's delivery is only what a retry is told.
    expect(judgeRetry(stored, { ...claim, delivery: "file" }, NOW + 1)).toEqual({ kind: "replay", record: stored });
  });

  it("refuses, as a programming error, a record that belongs to another claim", () => {
    const stored = recordClaim("m", idempotencyClaim("create_api_key", "k", {}, "inline"), "key_AAAAAAAAAAAAAAAAAAAA", NOW);
    expect(() => judgeRetry(stored, idempotencyClaim("create_api_key", "other", {}, "inline"), NOW)).toThrow(TypeError);
  });
});

describe("expirationForFingerprint", () => {
  it("keeps words as written and turns a date-time into the instant it names", () => {
    expect(expirationForFingerprint("30d")).toBe("30d");
    expect(expirationForFingerprint("never")).toBe("never");
    expect(expirationForFingerprint("2027-01-01T01:00:00+01:00")).toBe("2027-01-01T00:00:00.000Z");
    expect(expirationForFingerprint("2027-01-01T00:00:00Z")).toBe("2027-01-01T00:00:00.000Z");
  });
});
