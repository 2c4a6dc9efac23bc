import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { generateApiKey } from "../../src/keys/format.js";
import { rows } from "../helpers/db.js";
import { startTestServer, testClock, type TestServer } from "../helpers/server.js";
import { merchantToken } from "../helpers/tokens.js";

const DAY = 86_400_000;

/** The key with its last checksum character changed: same shape, checksum no longer matches. */
function withOtherLastCharacter(key: string): string {
  return key.slice(0, -1) + (key.endsWith("0") ? "1" : "0");
}
const START = Date.UTC(2026, 10, 25, 12, 0, 0);

describe("verify_api_key (V1)", () => {
  let server: TestServer;
  let tokenA: string;
  let tokenB: string;

  beforeEach(async () => {
    server = await startTestServer({ clock: testClock(START), env: { API_KEYS_MCP_RATE_LIMIT_READ: "10000" } });
    // Long-lived tokens: the clock moves by days to expire keys, not tokens.
    tokenA = await merchantToken("merchant_a", "alice", undefined, { now: START / 1000, ttl: 400 * 86_400 });
    tokenB = await merchantToken("merchant_b", "bob", undefined, { now: START / 1000, ttl: 400 * 86_400 });
  });
  afterEach(() => server.close());

  async function create(args: Record<string, unknown> = {}, token = tokenA): Promise<{ id: string; key: string }> {
    const result = await server.call("create_api_key", { name: "verified", token, ...args });
    if (!result.ok) throw new Error(result.text);
    return { id: result.data.key.key_id, key: result.data.api_key };
  }
  const verify = (apiKey: string, token = tokenA) => server.call("verify_api_key", { api_key: apiKey, token });

  it("answers VALID with the key's details for a live key of this merchant", async () => {
    const { id, key } = await create({ scopes: ["payments:read"] });
    const result = await verify(key);
    expect(result.ok && result.data).toMatchObject({ valid: true, code: "VALID", key: { key_id: id, status: "active", scopes: ["payments:read"] } });
    expect(result.ok && result.texts.join("")).not.toContain(key);
  });

  it.each([
    ["not a key at all", "hello"],
    ["the right shape with a wrong checksum", () => withOtherLastCharacter(generateApiKey("secret", "test"))],
    ["a key with whitespace inside", () => generateApiKey("secret", "test").replace("_test_", "_test _")],
    ["an unknown environment", () => `sk_prod_${"a".repeat(32)}`],
  ])("answers MALFORMED for %s", async (_label, candidate) => {
    const result = await verify(typeof candidate === "function" ? candidate() : candidate);
    expect(result.ok && result.data).toEqual({ valid: false, code: "MALFORMED" });
  });

  // The library's verify has codes of its own for a required type or environment; a tool call
  // requires neither, so the tool must not advertise codes it can never return.
  it("advertises exactly the codes a tool call can return", async () => {
    const { tools } = await server.client.listTools();
    const schema = tools.find((tool) => tool.name === "verify_api_key")!.outputSchema as { properties: Record<string, { enum?: string[] }> };
    expect(schema.properties.code!.enum).toEqual(["VALID", "MALFORMED", "NOT_FOUND", "EXPIRED", "REVOKED"]);
  });

  it("answers MALFORMED without touching the database", async () => {
    const valid = generateApiKey("secret", "test");
    server.db!.exec("DROP TABLE api_keys");
    // A lookup would now fail with ERR_INTERNAL; a malformed key must not need one.
    const malformed = await verify(valid.slice(0, 10));
    expect(malformed.ok && malformed.data).toEqual({ valid: false, code: "MALFORMED" });
    const lookedUp = await verify(valid);
    expect(lookedUp.ok ? "ok" : lookedUp.code).toBe("ERR_INTERNAL");
  });

  it("answers NOT_FOUND for a well-formed key nobody issued", async () => {
    const result = await verify(generateApiKey("publishable", "live"));
    expect(result.ok && result.data).toEqual({ valid: false, code: "NOT_FOUND" });
  });

  it("answers NOT_FOUND for another merchant's key, reveals nothing about it and counts no use", async () => {
    const { id, key } = await create({}, tokenB);
    const result = await verify(key, tokenA);
    expect(result.ok && result.data).toEqual({ valid: false, code: "NOT_FOUND" });
    const owner = await server.call("get_api_key", { key_id: id, token: tokenB });
    expect(owner.ok && owner.data.key).toMatchObject({ usage_count: 0, last_used_at: null });
  });

  it("answers EXPIRED once the clock passes expires_at, and REVOKED after delete", async () => {
    const expiring = await create({ expiration: "30d" });
    const revoked = await create();
    await server.call("delete_api_key", { key_id: revoked.id, token: tokenA });

    const beforeExpiry = await verify(expiring.key);
    expect(beforeExpiry.ok && beforeExpiry.data.code).toBe("VALID");
    server.clock.advance(30 * DAY);
    const expired = await verify(expiring.key);
    expect(expired.ok && expired.data).toMatchObject({ valid: false, code: "EXPIRED", key: { key_id: expiring.id, status: "expired" } });
    const gone = await verify(revoked.key);
    expect(gone.ok && gone.data).toMatchObject({ valid: false, code: "REVOKED", key: { key_id: revoked.id, status: "revoked" } });
  });

  it("counts uses exactly: N valid verifications give usage_count N and last_used_at of the last one", async () => {
    const { id, key } = await create();
    const other = await create({ name: "other" });
    for (let i = 0; i < 25; i++) {
      server.clock.advance(1000);
      expect((await verify(key)).ok).toBe(true);
    }
    await verify(other.key);
    // Failed checks are not uses.
    server.clock.advance(1000);
    await server.call("delete_api_key", { key_id: other.id, token: tokenA });
    await verify(other.key);

    const got = await server.call("get_api_key", { key_id: id, token: tokenA });
    expect(got.ok && got.data.key).toMatchObject({ usage_count: 25, last_used_at: new Date(START + 25_000).toISOString() });
    await server.flushUsage();
    const [row] = rows(server.db!, "key_usage");
    expect(row).toMatchObject({ usage_count: 25, last_used_at: START + 25_000 });
    const otherRow = await server.call("get_api_key", { key_id: other.id, token: tokenA });
    expect(otherRow.ok && otherRow.data.key.usage_count).toBe(1);
  });

  it("writes nothing per verification: uses are batched and no audit row is added", async () => {
    const { key } = await create();
    const changes = server.db!.prepare("SELECT total_changes()").pluck();
    const before = changes.get() as number;
    for (let i = 0; i < 10; i++) await verify(key);
    expect(changes.get()).toBe(before);
    expect(rows(server.db!, "audit_events")).toHaveLength(1);
  });

  it("needs only api_keys:read", async () => {
    const { key } = await create();
    const reader = await merchantToken("merchant_a", "reader", "api_keys:read", { now: START / 1000 });
    const result = await verify(key, reader);
    expect(result.ok && result.data.code).toBe("VALID");
    const nobody = await merchantToken("merchant_a", "nobody", "api_keys:write", { now: START / 1000 });
    const refused = await verify(key, nobody);
    expect(refused.ok ? "ok" : refused.code).toBe("ERR_FORBIDDEN");
  });

  it("never writes the key to the log", async () => {
    const { key } = await create();
    await verify(key);
    await verify(`${key.slice(0, 20)}tampered`);
    expect(server.rawLogs.join("\n")).not.toContain(key.slice(8));
    expect(server.rawLogs.join("\n")).not.toContain(key.slice(8, 20));
  });
});
