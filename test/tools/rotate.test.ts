import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { API_KEY_PATTERN } from "../../src/keys/format.js";
import { changeEvents, rows } from "../helpers/db.js";
import { startTestServer, testClock, type TestServer } from "../helpers/server.js";
import { merchantToken } from "../helpers/tokens.js";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const START = Date.UTC(2026, 10, 25, 12, 0, 0);
const iso = (ms: number) => new Date(ms).toISOString();

describe("rotate_api_key (V2)", () => {
  let server: TestServer;
  let token: string;

  beforeEach(async () => {
    server = await startTestServer({ clock: testClock(START), env: { API_KEYS_MCP_RATE_LIMIT_WRITE: "10000" } });
    token = await merchantToken("merchant_a", "alice", undefined, { now: START / 1000, ttl: 400 * 86_400 });
  });
  afterEach(() => server.close());

  async function create(args: Record<string, unknown> = {}): Promise<{ id: string; key: string }> {
    const result = await server.call("create_api_key", { name: "payments", description: "card charges", token, ...args });
    if (!result.ok) throw new Error(result.text);
    return { id: result.data.key.key_id, key: result.data.api_key };
  }
  const rotate = (args: Record<string, unknown>) => server.call("rotate_api_key", { token, ...args });
  const verify = (apiKey: string) => server.call("verify_api_key", { api_key: apiKey, token });

  it("with grace 0: a new key with the same details, the old one expired now, linked both ways", async () => {
    const old = await create({ type: "publishable", environment: "live", scopes: ["refunds:*", "payments:read"] });
    server.clock.advance(HOUR);
    const result = await rotate({ key_id: old.id, grace_period: "0" });
    if (!result.ok) throw new Error(result.text);
    const { key, api_key, previous } = result.data;

    expect(api_key).toMatch(API_KEY_PATTERN);
    expect(api_key.startsWith("pk_live_")).toBe(true);
    expect(key).toMatchObject({
      name: "payments",
      description: "card charges",
      type: "publishable",
      environment: "live",
      scopes: ["payments:read", "refunds:*"],
      status: "active",
      expires_at: null,
      created_at: iso(START + HOUR),
      rotated_from: old.id,
      rotated_to: null,
      created_by: "alice",
    });
    expect(key.key_id).not.toBe(old.id);
    expect(previous).toMatchObject({ key_id: old.id, status: "expired", expires_at: iso(START + HOUR), rotated_to: key.key_id });
    expect(result.texts[0]).toMatch(/shown only in this result/);

    const newCheck = await verify(api_key);
    expect(newCheck.ok && newCheck.data.code).toBe("VALID");
    const oldCheck = await verify(old.key);
    expect(oldCheck.ok && oldCheck.data.code).toBe("EXPIRED");
  });

  it("with grace: the old key keeps working until the end of the grace period", async () => {
    const old = await create();
    const result = await rotate({ key_id: old.id, grace_period: "24h" });
    if (!result.ok) throw new Error(result.text);
    expect(result.data.previous).toMatchObject({ status: "active", expires_at: iso(START + DAY) });

    server.clock.advance(DAY - 1);
    expect(await verify(old.key)).toMatchObject({ ok: true, data: { code: "VALID" } });
    server.clock.advance(1);
    expect(await verify(old.key)).toMatchObject({ ok: true, data: { code: "EXPIRED" } });
    expect(await verify(result.data.api_key)).toMatchObject({ ok: true, data: { code: "VALID" } });
  });

  it("never lets the grace period extend the old key's life", async () => {
    const old = await create({ expiration: "30d" });
    server.clock.advance(30 * DAY - HOUR);
    const result = await rotate({ key_id: old.id, grace_period: "7d" });
    if (!result.ok) throw new Error(result.text);
    expect(result.data.previous.expires_at).toBe(iso(START + 30 * DAY));
    // The new key gets the old one's 30-day lifetime, from now.
    expect(result.data.key.expires_at).toBe(iso(START + 30 * DAY - HOUR + 30 * DAY));
  });

  it("takes an explicit expiration and scopes for the new key", async () => {
    const old = await create({ scopes: ["payments:read"] });
    const result = await rotate({ key_id: old.id, grace_period: "1h", expiration: "90d", scopes: ["payments:write"] });
    expect(result.ok && result.data.key).toMatchObject({ expires_at: iso(START + 90 * DAY), scopes: ["payments:write"] });
  });

  it.each([
    ["7d", 7 * DAY],
    ["168h", 7 * DAY],
    ["10080m", 7 * DAY],
    ["90s", 90_000],
  ])("accepts a grace period of %s", async (grace_period, ms) => {
    const old = await create();
    const result = await rotate({ key_id: old.id, grace_period });
    expect(result.ok && result.data.previous.expires_at).toBe(iso(START + ms));
  });

  it.each([
    ["8d", "ERR_VALIDATION"],
    ["169h", "ERR_VALIDATION"],
    ["10081m", "ERR_VALIDATION"],
    ["1w", "MCP error -32602"],
    ["-1h", "MCP error -32602"],
    ["", "MCP error -32602"],
    ["00", "MCP error -32602"],
  ])("refuses a grace period of %j and changes nothing", async (grace_period, code) => {
    const old = await create();
    const before = rows(server.db!, "api_keys");
    const result = await rotate({ key_id: old.id, grace_period });
    expect(result.ok ? "ok" : result.code).toBe(code);
    expect(rows(server.db!, "api_keys")).toEqual(before);
  });

  it("records one api_key.rotated event and no separate creation", async () => {
    const old = await create();
    const result = await rotate({ key_id: old.id, grace_period: "1h" });
    if (!result.ok) throw new Error(result.text);
    const events = changeEvents(server.db!);
    expect(events.map((event) => event.action)).toEqual(["api_key.created", "api_key.rotated"]);
    expect(events[1]).toMatchObject({ key_id: old.id, actor: "alice", tenant_id: "merchant_a", outcome: "success" });
    expect(JSON.parse(events[1]!.changes as string)).toEqual({
      rotated_to: { from: null, to: result.data.key.key_id },
      expires_at: { from: null, to: iso(START + HOUR) },
      replacement: { from: null, to: { key_id: result.data.key.key_id, prefix: result.data.key.prefix, expires_at: null, scopes: [], delivery: "inline" } },
    });
    expect(JSON.stringify(events)).not.toContain(result.data.api_key);
  });

  it("chains: A → B → C, each linked to the next, and A cannot be rotated twice", async () => {
    const a = await create();
    const b = await rotate({ key_id: a.id, grace_period: "0" });
    if (!b.ok) throw new Error(b.text);
    const c = await rotate({ key_id: b.data.key.key_id, grace_period: "0" });
    if (!c.ok) throw new Error(c.text);
    expect(c.data.previous).toMatchObject({ key_id: b.data.key.key_id, rotated_from: a.id, rotated_to: c.data.key.key_id });
    expect(c.data.key.rotated_from).toBe(b.data.key.key_id);

    const again = await rotate({ key_id: a.id, grace_period: "0" });
    expect(again.ok ? "ok" : again.code).toBe("ERR_CONFLICT");
    expect(again.ok ? "" : again.text).toContain(b.data.key.key_id);
    const live = await server.call("list_api_keys", { status: "active", token });
    expect(live.ok && live.data.keys.map((key: { key_id: string }) => key.key_id)).toEqual([c.data.key.key_id]);
  });

  it("refuses a revoked key with ERR_CONFLICT and another tenant's key as missing", async () => {
    const old = await create();
    await server.call("delete_api_key", { key_id: old.id, token });
    const revoked = await rotate({ key_id: old.id, grace_period: "0" });
    expect(revoked.ok ? "ok" : revoked.code).toBe("ERR_CONFLICT");

    const mine = await create();
    const other = await merchantToken("merchant_b", "bob", undefined, { now: START / 1000 });
    const foreign = await server.call("rotate_api_key", { key_id: mine.id, grace_period: "0", token: other });
    expect(foreign.ok ? "ok" : foreign.code).toBe("ERR_NOT_FOUND");
    expect(rows(server.db!, "api_keys")).toHaveLength(2);
  });

  it("can rotate an expired key into a fresh one", async () => {
    const old = await create({ expiration: "30d" });
    server.clock.advance(31 * DAY);
    const result = await rotate({ key_id: old.id, grace_period: "1h" });
    if (!result.ok) throw new Error(result.text);
    expect(result.data.previous).toMatchObject({ status: "expired", expires_at: iso(START + 30 * DAY) });
    expect(result.data.key).toMatchObject({ status: "active", expires_at: iso(START + 31 * DAY + 30 * DAY) });
  });
});
