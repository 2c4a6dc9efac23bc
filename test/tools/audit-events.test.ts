import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startTestServer, testClock, type TestServer } from "../helpers/server.js";
import { merchantToken, signToken } from "../helpers/tokens.js";

const START = Date.UTC(2026, 10, 25, 12, 0, 0);
const iso = (ms: number) => new Date(ms).toISOString();

interface AuditEvent {
  event_id: string;
  occurred_at: string;
  action: string;
  key_id: string | null;
  actor: string | null;
  outcome: string;
  reason: string | null;
  changes: Record<string, { from: unknown; to: unknown }> | null;
}

describe("list_audit_events (V4)", () => {
  let server: TestServer;
  let alice: string;
  let bob: string;
  let keyOne: string;
  let keyTwo: string;
  let secrets: string[];

  beforeEach(async () => {
    server = await startTestServer({ clock: testClock(START) });
    alice = await merchantToken("merchant_a", "alice", undefined, { now: START / 1000, ttl: 86_400 });
    bob = await merchantToken("merchant_b", "bob", undefined, { now: START / 1000, ttl: 86_400 });
    secrets = [];
    const created = async (name: string, token: string) => {
      server.clock.advance(1000);
      const result = await server.call("create_api_key", { name, token });
      if (!result.ok) throw new Error(result.text);
      secrets.push(result.data.api_key);
      return result.data.key.key_id as string;
    };
    keyOne = await created("one", alice); // START + 1 s
    keyTwo = await created("two", alice); // + 2 s
    await created("bob's", bob); // + 3 s
    server.clock.advance(1000); // + 4 s
    await server.call("update_api_key", { key_id: keyOne, name: "one, renamed", token: alice });
    server.clock.advance(1000); // + 5 s
    const rotated = await server.call("rotate_api_key", { key_id: keyTwo, grace_period: "1h", token: alice });
    if (!rotated.ok) throw new Error(rotated.text);
    secrets.push(rotated.data.api_key);
    server.clock.advance(1000); // + 6 s
    await server.call("delete_api_key", { key_id: keyOne, token: alice });
    server.clock.advance(1000); // + 7 s: a denial with a tenant (read-only token trying to write)
    const reader = await merchantToken("merchant_a", "rita", "api_keys:read", { now: START / 1000 });
    await server.call("delete_api_key", { key_id: keyTwo, token: reader });
  });
  afterEach(() => server.close());

  async function list(args: Record<string, unknown> = {}, token = alice): Promise<{ events: AuditEvent[]; next_cursor: string | null }> {
    const result = await server.call("list_audit_events", { token, ...args });
    if (!result.ok) throw new Error(result.text);
    return result.data;
  }

  it("lists this merchant's events newest first, with actor, outcome and changes", async () => {
    const { events, next_cursor } = await list();
    expect(next_cursor).toBeNull();
    expect(events.map((event) => [event.action, event.key_id, event.actor, event.outcome, event.occurred_at])).toEqual([
      ["auth.denied", keyTwo, "rita", "denied", iso(START + 7000)],
      ["api_key.revoked", keyOne, "alice", "success", iso(START + 6000)],
      ["api_key.rotated", keyTwo, "alice", "success", iso(START + 5000)],
      ["api_key.updated", keyOne, "alice", "success", iso(START + 4000)],
      ["api_key.created", keyTwo, "alice", "success", iso(START + 2000)],
      ["api_key.created", keyOne, "alice", "success", iso(START + 1000)],
    ]);
    expect(events[0]).toMatchObject({ reason: "ERR_FORBIDDEN", changes: null });
    expect(events[3]!.changes).toEqual({ name: { from: "one", to: "one, renamed" } });
    expect(events[1]!.changes).toEqual({ revoked_at: { from: null, to: iso(START + 6000) } });
    expect(events[5]!.event_id).toMatch(/^evt_[0-9A-Za-z]{20}$/);
  });

  it("never shows another merchant's events, and never a secret", async () => {
    const { events } = await list({}, bob);
    expect(events.map((event) => [event.action, event.actor])).toEqual([["api_key.created", "bob"]]);
    const everything = JSON.stringify([await list(), await list({}, bob)]);
    for (const secret of secrets) expect(everything).not.toContain(secret);
    expect(everything).not.toMatch(/[0-9a-f]{64}/);
  });

  it("filters by key, action and time, alone and together", async () => {
    const byKey = await list({ key_id: keyOne });
    expect(byKey.events.map((event) => event.action)).toEqual(["api_key.revoked", "api_key.updated", "api_key.created"]);
    const created = await list({ action: "api_key.created" });
    expect(created.events.map((event) => event.key_id)).toEqual([keyTwo, keyOne]);
    const recent = await list({ since: iso(START + 5000) });
    expect(recent.events.map((event) => event.action)).toEqual(["auth.denied", "api_key.revoked", "api_key.rotated"]);
    const withOffset = await list({ since: "2026-11-25T13:00:05+01:00" });
    expect(withOffset.events).toHaveLength(3);
    const combined = await list({ key_id: keyTwo, action: "api_key.rotated", since: iso(START) });
    expect(combined.events.map((event) => event.changes?.expires_at)).toEqual([{ from: null, to: iso(START + 5000 + 3_600_000) }]);
    expect((await list({ key_id: keyOne, action: "api_key.rotated" })).events).toEqual([]);
  });

  it("pages with a cursor without gaps or repeats", async () => {
    const all = (await list({ limit: 100 })).events.map((event) => event.event_id);
    const paged: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await list({ limit: 4, ...(cursor ? { cursor } : {}) });
      paged.push(...page.events.map((event) => event.event_id));
      cursor = page.next_cursor;
    } while (cursor);
    expect(paged).toEqual(all);
    expect(all).toHaveLength(6);
  });

  it("refuses a cursor from list_api_keys, and bad filters", async () => {
    for (let i = 0; i < 3; i++) await server.call("create_api_key", { name: `k${i}`, token: alice });
    const keys = await server.call("list_api_keys", { limit: 1, token: alice });
    const foreignCursor = keys.ok ? keys.data.next_cursor : null;
    expect(foreignCursor).toEqual(expect.any(String));
    const refused = await server.call("list_audit_events", { cursor: foreignCursor, token: alice });
    expect(refused.ok ? "ok" : refused.code).toBe("ERR_VALIDATION");

    for (const args of [{ action: "api_key.deleted" }, { since: "yesterday" }, { key_id: "key_short" }, { limit: 0 }]) {
      const result = await server.call("list_audit_events", { ...args, token: alice });
      expect(result.ok ? "ok" : result.code).toBe("MCP error -32602");
    }
  });

  it("needs api_keys:read", async () => {
    const writer = await signToken({ sub: "w", merchant_id: "merchant_a", scope: "api_keys:write" }, { now: START / 1000 });
    const result = await server.call("list_audit_events", { token: writer });
    expect(result.ok ? "ok" : result.code).toBe("ERR_FORBIDDEN");
  });
});
