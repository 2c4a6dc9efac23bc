import { describe, expect, it } from "vitest";
import { planCreate, planRevoke, planRotation, planUpdate } from "../../src/keys/lifecycle.js";
import type { KeyRecord, NewKey, Rotation } from "../../src/keys/record.js";

const ACTOR = { tenantId: "merchant_a", subject: "alice", client: null };
const T0 = Date.UTC(2030, 0, 1);
const HOUR = 3_600_000;
const iso = (ms: number) => new Date(ms).toISOString();

const NEW_KEY: NewKey = {
  keyId: "key_00000000000000000001",
  name: "checkout",
  description: "card payments",
  type: "secret",
  environment: "live",
  prefix: "sk_live_Ab3x",
  hash: "f".repeat(64),
  hashVersion: 1,
  expiresAt: T0 + 90 * 24 * HOUR,
  scopes: ["payments:read"],
};

const ROTATION: Rotation = { keyId: "key_00000000000000000002", prefix: "sk_live_Zz9y", hash: "e".repeat(64), hashVersion: 1, graceMs: 0 };

/** A stored key: created at T0 as NEW_KEY, with `changes` applied. */
function stored(changes: Partial<KeyRecord> = {}): KeyRecord {
  return { ...planCreate(ACTOR, NEW_KEY, T0).record, ...changes };
}

describe("the lifecycle rules, without a database", () => {
  describe("planCreate", () => {
    it("makes the record at the call's instant and an audit entry of every new value, never the hash", () => {
      const { record, audit } = planCreate(ACTOR, NEW_KEY, T0);
      expect(record).toEqual({
        keyId: NEW_KEY.keyId,
        tenantId: "merchant_a",
        name: "checkout",
        description: "card payments",
        type: "secret",
        environment: "live",
        prefix: "sk_live_Ab3x",
        createdAt: T0,
        updatedAt: T0,
        expiresAt: NEW_KEY.expiresAt,
        revokedAt: null,
        lastUsedAt: null,
        usageCount: 0,
        createdBy: "alice",
        scopes: ["payments:read"],
        rotatedFrom: null,
        rotatedTo: null,
      });
      expect(audit).toEqual({
        action: "api_key.created",
        outcome: "success",
        tenantId: "merchant_a",
        actor: "alice",
        keyId: NEW_KEY.keyId,
        client: null,
        changes: {
          name: { from: null, to: "checkout" },
          description: { from: null, to: "card payments" },
          type: { from: null, to: "secret" },
          environment: { from: null, to: "live" },
          prefix: { from: null, to: "sk_live_Ab3x" },
          expires_at: { from: null, to: iso(NEW_KEY.expiresAt!) },
          scopes: { from: null, to: ["payments:read"] },
        },
      });
      expect(JSON.stringify(audit)).not.toContain(NEW_KEY.hash);
    });
  });

  describe("planUpdate", () => {
    it("records only the fields that change, and nothing when none does", () => {
      const current = stored();
      const plan = planUpdate(ACTOR, current, { name: "checkout", description: null, scopes: ["payments:read"] }, T0 + 1);
      expect(plan).toEqual({
        ok: true,
        changed: true,
        key: { ...current, description: null, updatedAt: T0 + 1 },
        audit: expect.objectContaining({ action: "api_key.updated", changes: { description: { from: "card payments", to: null } } }),
      });
      expect(planUpdate(ACTOR, current, { name: "checkout", scopes: ["payments:read"] }, T0 + 1)).toEqual({ ok: true, changed: false, key: current });
    });

    it("refuses a missing key and a revoked one", () => {
      expect(planUpdate(ACTOR, undefined, { name: "x" }, T0)).toEqual({ ok: false, reason: "NOT_FOUND" });
      expect(planUpdate(ACTOR, stored({ revokedAt: T0 }), { name: "x" }, T0)).toEqual({ ok: false, reason: "REVOKED" });
    });

    it.each([
      ["never", null, false],
      ["later than its end", T0 + 2 * HOUR + 1, false],
      ["its end exactly", T0 + 2 * HOUR, true],
      ["sooner", T0 + HOUR, true],
    ])("lets a rotated key's expiry move to %s only if that ends it no later", (_label, expiresAt, allowed) => {
      const rotated = stored({ expiresAt: T0 + 2 * HOUR, rotatedTo: ROTATION.keyId });
      const plan = planUpdate(ACTOR, rotated, { expiresAt }, T0 + 1);
      expect(plan.ok).toBe(allowed);
      if (!allowed) expect(plan).toEqual({ ok: false, reason: "ROTATED", rotatedTo: ROTATION.keyId });
    });

    it("lets an expired key that was never rotated be extended", () => {
      const expired = stored({ expiresAt: T0 + 1 });
      expect(planUpdate(ACTOR, expired, { expiresAt: null }, T0 + 10)).toMatchObject({ ok: true, changed: true, key: { expiresAt: null } });
    });
  });

  describe("planRevoke", () => {
    it("revokes once, at the call's instant, and changes nothing the second time", () => {
      const plan = planRevoke(ACTOR, stored(), T0 + 5);
      expect(plan).toMatchObject({ ok: true, changed: true, key: { revokedAt: T0 + 5, updatedAt: T0 + 5 } });
      expect(plan.ok && plan.changed && plan.audit.changes).toEqual({ revoked_at: { from: null, to: iso(T0 + 5) } });
      const again = stored({ revokedAt: T0 + 5, updatedAt: T0 + 5 });
      expect(planRevoke(ACTOR, again, T0 + 9)).toEqual({ ok: true, changed: false, key: again });
      expect(planRevoke(ACTOR, undefined, T0)).toEqual({ ok: false, reason: "NOT_FOUND" });
    });
  });

  describe("planRotation", () => {
    it("gives the new key the old one's details and lifetime from now, and ends the old one at now + grace", () => {
      const old = stored();
      const now = T0 + 10 * HOUR;
      const plan = planRotation(ACTOR, old, { ...ROTATION, graceMs: HOUR }, now);
      if (!plan.ok) throw new Error(plan.reason);
      expect(plan.key).toMatchObject({
        keyId: ROTATION.keyId,
        name: "checkout",
        description: "card payments",
        type: "secret",
        environment: "live",
        prefix: ROTATION.prefix,
        createdAt: now,
        expiresAt: now + 90 * 24 * HOUR,
        scopes: ["payments:read"],
        rotatedFrom: old.keyId,
        createdBy: "alice",
      });
      expect(plan.previous).toEqual({ ...old, expiresAt: now + HOUR, rotatedTo: ROTATION.keyId, updatedAt: now });
      expect(plan.audit).toMatchObject({ action: "api_key.rotated", keyId: old.keyId });
      expect(plan.audit.changes).toEqual({
        rotated_to: { from: null, to: ROTATION.keyId },
        expires_at: { from: iso(old.expiresAt!), to: iso(now + HOUR) },
        replacement: { from: null, to: { key_id: ROTATION.keyId, prefix: ROTATION.prefix, expires_at: iso(now + 90 * 24 * HOUR), scopes: ["payments:read"] } },
      });
    });

    it("never lets the grace period outlast the old key's own expiry, and takes the expiry and scopes it is given", () => {
      const old = stored({ expiresAt: T0 + HOUR });
      const plan = planRotation(ACTOR, old, { ...ROTATION, graceMs: 7 * 24 * HOUR, expiresAt: null, scopes: [] }, T0);
      expect(plan).toMatchObject({ ok: true, previous: { expiresAt: T0 + HOUR }, key: { expiresAt: null, scopes: [] } });
      const never = planRotation(ACTOR, stored({ expiresAt: null }), ROTATION, T0);
      expect(never).toMatchObject({ ok: true, previous: { expiresAt: T0 }, key: { expiresAt: null } });
    });

    it("refuses a missing, a revoked and an already rotated key", () => {
      expect(planRotation(ACTOR, undefined, ROTATION, T0)).toEqual({ ok: false, reason: "NOT_FOUND" });
      expect(planRotation(ACTOR, stored({ revokedAt: T0 }), ROTATION, T0)).toEqual({ ok: false, reason: "REVOKED" });
      expect(planRotation(ACTOR, stored({ rotatedTo: "key_x" }), ROTATION, T0)).toEqual({ ok: false, reason: "ALREADY_ROTATED", rotatedTo: "key_x" });
    });
  });
});
