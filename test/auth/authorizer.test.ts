import { afterEach, describe, expect, it } from "vitest";
import { GENESIS_HASH, type StoredRow } from "../../src/audit/chain.js";
import { rows } from "../helpers/db.js";
import { startTestServer, testClock, type CallOutcome, type TestServer } from "../helpers/server.js";
import { hyperswitchSinglePurposeToken, hyperswitchToken, merchantToken, signToken } from "../helpers/tokens.js";

const OTHER_SECRET = "not-the-server-secret-but-32-bytes-or-more";
const MISSING_KEY_ID = "key_AAAAAAAAAAAAAAAAAAAA";

function auditRows(server: TestServer): StoredRow[] {
  return rows(server.db!, "audit_events") as unknown as StoredRow[];
}

function keyTable(server: TestServer): unknown[] {
  return rows(server.db!, "api_keys");
}

function expectCode(outcome: CallOutcome, code: string): string {
  expect(outcome.ok ? "OK" : outcome.code).toBe(code);
  return outcome.ok ? "" : outcome.text;
}

/** Neither the token nor its payload or signature appears in `text`. */
function expectNoToken(text: string, token: string): void {
  expect(text.includes(token)).toBe(false);
  for (const part of token.split(".").slice(1)) {
    if (part.length >= 16) expect(text.includes(part)).toBe(false);
  }
}

const nowSeconds = (clock: () => number) => Math.floor(clock() / 1000);

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

describe("verified-token cache", () => {
  it("does not keep a token alive past its exp (plus the 30 s tolerance)", async () => {
    const clock = testClock();
    server = await startTestServer({ clock });
    const token = await merchantToken("merchant_a", "user_a", "api_keys:read", { now: nowSeconds(clock), ttl: 60 });
    const exp = nowSeconds(clock) + 60;

    expectCode(await server.call("list_api_keys", { token }), "OK");
    clock.set(exp * 1000 + 10_000);
    expectCode(await server.call("list_api_keys", { token }), "OK");
    clock.set(exp * 1000 + 31_000);
    const text = expectCode(await server.call("list_api_keys", { token }), "ERR_AUTH_EXPIRED");
    expectNoToken(text, token);
  });

  it("does not keep a token alive past exp when it was used many times before", async () => {
    const clock = testClock();
    server = await startTestServer({ clock });
    const token = await merchantToken("merchant_a", "user_a", "api_keys:read", { now: nowSeconds(clock), ttl: 120 });
    for (let i = 0; i < 5; i += 1) {
      expectCode(await server.call("list_api_keys", { token }), "OK");
      clock.advance(20_000);
    }
    clock.advance(60_000);
    expectCode(await server.call("list_api_keys", { token }), "ERR_AUTH_EXPIRED");
  });

  // A two-day dashboard token must stop at the configured maximum age, also once remembered.
  it("does not keep a token alive past its iat plus API_KEYS_MCP_JWT_MAX_AGE, though its exp is days away", async () => {
    const clock = testClock();
    server = await startTestServer({ clock, env: { API_KEYS_MCP_JWT_MAX_AGE: "1h" } });
    const iat = nowSeconds(clock);
    const token = await hyperswitchToken("merchant_view_only", "merchant_a", { now: iat });

    expectCode(await server.call("list_api_keys", { token }), "OK");
    clock.set((iat + 3600) * 1000 + 10_000);
    expectCode(await server.call("list_api_keys", { token }), "OK");
    clock.set((iat + 3600) * 1000 + 31_000);
    const text = expectCode(await server.call("list_api_keys", { token }), "ERR_AUTH_EXPIRED");
    expect(text).toMatch(/issued more than 1h ago/);
    expectNoToken(text, token);
  });
});

interface DenialCase {
  label: string;
  tool: string;
  args: Record<string, unknown>;
  token: (now: number) => Promise<string | undefined>;
  reason: string;
  tenant: string | null;
  actor: string | null;
  keyId: string | null;
}

const DENIALS: DenialCase[] = [
  {
    label: "missing token",
    tool: "get_api_key",
    args: { key_id: MISSING_KEY_ID },
    token: async () => undefined,
    reason: "ERR_AUTH_MISSING",
    tenant: null,
    actor: null,
    keyId: MISSING_KEY_ID,
  },
  {
    label: "token signed with another secret",
    tool: "list_api_keys",
    args: {},
    token: (now) => merchantToken("merchant_a", "user_a", "api_keys:read", { now, secret: OTHER_SECRET }),
    reason: "ERR_AUTH_INVALID",
    tenant: null,
    actor: null,
    keyId: null,
  },
  {
    label: "expired token",
    tool: "delete_api_key",
    args: { key_id: MISSING_KEY_ID },
    token: (now) => merchantToken("merchant_a", "user_a", "api_keys:read api_keys:write", { now: now - 7200, ttl: 3600 }),
    reason: "ERR_AUTH_EXPIRED",
    tenant: null,
    actor: null,
    keyId: MISSING_KEY_ID,
  },
  {
    label: "read-only token on create_api_key",
    tool: "create_api_key",
    args: { name: "not allowed" },
    token: (now) => merchantToken("merchant_ro", "user_ro", "api_keys:read", { now }),
    reason: "ERR_FORBIDDEN",
    tenant: "merchant_ro",
    actor: "user_ro",
    keyId: null,
  },
  {
    label: "read-only token on update_api_key",
    tool: "update_api_key",
    args: { key_id: MISSING_KEY_ID, name: "renamed" },
    token: (now) => merchantToken("merchant_ro", "user_ro", "api_keys:read", { now }),
    reason: "ERR_FORBIDDEN",
    tenant: "merchant_ro",
    actor: "user_ro",
    keyId: MISSING_KEY_ID,
  },
  {
    label: "read-only token on rotate_api_key",
    tool: "rotate_api_key",
    args: { key_id: MISSING_KEY_ID, grace_period: "1h" },
    token: (now) => merchantToken("merchant_ro", "user_ro", "api_keys:read", { now }),
    reason: "ERR_FORBIDDEN",
    tenant: "merchant_ro",
    actor: "user_ro",
    keyId: MISSING_KEY_ID,
  },
  {
    label: "missing token on list_audit_events",
    tool: "list_audit_events",
    args: {},
    token: async () => undefined,
    reason: "ERR_AUTH_MISSING",
    tenant: null,
    actor: null,
    keyId: null,
  },
  {
    label: "pre-login token without a merchant",
    tool: "list_api_keys",
    args: {},
    token: (now) => hyperswitchSinglePurposeToken({ now }),
    reason: "ERR_FORBIDDEN",
    tenant: null,
    actor: "9f4c1f7e-user",
    keyId: null,
  },
  {
    label: "token naming no user",
    tool: "list_api_keys",
    args: {},
    token: (now) => signToken({ merchant_id: "merchant_a", scope: "api_keys:read" }, { now }),
    reason: "ERR_AUTH_INVALID",
    tenant: null,
    actor: null,
    keyId: null,
  },
];

describe("denials are audited (S3)", () => {
  it.each(DENIALS)("$label: one auth.denied row with the reason and no token", async (denial) => {
    const clock = testClock();
    server = await startTestServer({ clock });
    const token = await denial.token(nowSeconds(clock));
    const outcome = await server.call(denial.tool, { ...denial.args, ...(token === undefined ? {} : { token }) });
    expectCode(outcome, denial.reason);

    const rows = auditRows(server);
    expect(rows).toHaveLength(1);
    const row = rows[0]!;
    expect(row).toEqual({
      seq: row.seq,
      event_id: row.event_id,
      occurred_at: clock(),
      action: "auth.denied",
      outcome: "denied",
      tenant_id: denial.tenant,
      actor: denial.actor,
      key_id: denial.keyId,
      tool: denial.tool,
      reason: denial.reason,
      changes: null,
      client_name: "test-client",
      client_version: "0.0.0",
      prev_hash: GENESIS_HASH,
      hash: row.hash,
      hash_alg: "sha256",
    });
    expect(row.event_id).toMatch(/^evt_[0-9A-Za-z]{20}$/);
    expect(row.hash).toMatch(/^[0-9a-f]{64}$/);
    if (token !== undefined) expectNoToken(JSON.stringify(row), token);
  });

  it("records at most five denials a minute per caller, and the next one recorded says how many were left out", async () => {
    const clock = testClock();
    server = await startTestServer({ clock });
    const readOnly = await merchantToken("merchant_a", "rita", "api_keys:read", { now: nowSeconds(clock), ttl: 86_400 });
    const other = await merchantToken("merchant_a", "olga", "api_keys:read", { now: nowSeconds(clock), ttl: 86_400 });
    for (let i = 0; i < 40; i++) expectCode(await server.call("create_api_key", { name: `n${i}`, token: readOnly }), "ERR_FORBIDDEN");
    const denials = () => auditRows(server!).filter((row) => row.action === "auth.denied");
    expect(denials().map((row) => row.actor)).toEqual(["rita", "rita", "rita", "rita", "rita"]);
    // Another caller has a bound of its own.
    expectCode(await server.call("create_api_key", { name: "x", token: other }), "ERR_FORBIDDEN");
    expect(denials().at(-1)).toMatchObject({ actor: "olga", changes: null });

    clock.advance(60_000);
    expectCode(await server.call("create_api_key", { name: "later", token: readOnly }), "ERR_FORBIDDEN");
    const last = denials().at(-1)!;
    expect(last.actor).toBe("rita");
    expect(JSON.parse(last.changes!)).toEqual({ omitted_denials: { from: null, to: 35 } });
    // And the tenant can read that in its trail.
    const admin = await merchantToken("merchant_a", "admin", "api_keys:read api_keys:write", { now: nowSeconds(clock), ttl: 86_400 });
    const listed = await server.call("list_audit_events", { action: "auth.denied", limit: 1, token: admin });
    expect(listed.ok && listed.data.events[0]).toMatchObject({ actor: "rita", changes: { omitted_denials: { from: null, to: 35 } } });
  });

  it("does not audit a call refused by the failed-authentication limiter", async () => {
    server = await startTestServer({ env: { API_KEYS_MCP_RATE_LIMIT_AUTH_FAILURES: "1" } });
    const token = await merchantToken("merchant_a", "user_a", "api_keys:read", { secret: OTHER_SECRET });
    expectCode(await server.call("list_api_keys", { token }), "ERR_AUTH_INVALID");
    expectCode(await server.call("list_api_keys", { token }), "ERR_RATE_LIMITED");
    expectCode(await server.call("list_api_keys"), "ERR_RATE_LIMITED");
    expect(auditRows(server).map((row) => row.reason)).toEqual(["ERR_AUTH_INVALID"]);
  });

  it("does not audit a call refused by the per-principal limiter", async () => {
    server = await startTestServer({ env: { API_KEYS_MCP_RATE_LIMIT_WRITE: "1" } });
    const readOnly = await merchantToken("merchant_a", "user_a", "api_keys:read");
    const readWrite = await merchantToken("merchant_a", "user_b");
    expectCode(await server.call("create_api_key", { name: "first", token: readWrite }), "OK");
    expectCode(await server.call("create_api_key", { name: "second", token: readWrite }), "ERR_RATE_LIMITED");
    expectCode(await server.call("create_api_key", { name: "forbidden", token: readOnly }), "ERR_FORBIDDEN");
    expectCode(await server.call("create_api_key", { name: "forbidden again", token: readOnly }), "ERR_RATE_LIMITED");
    expect(auditRows(server).map((row) => [row.action, row.reason])).toEqual([
      ["api_key.created", null],
      ["auth.denied", "ERR_FORBIDDEN"],
    ]);
  });
});

describe("rate limits (A7)", () => {
  it("limits failed authentications and says how long to wait", async () => {
    const clock = testClock();
    server = await startTestServer({ clock, env: { API_KEYS_MCP_RATE_LIMIT_AUTH_FAILURES: "3" } });
    const bad = await merchantToken("merchant_a", "user_a", "api_keys:read", { now: nowSeconds(clock), secret: OTHER_SECRET });
    for (let i = 0; i < 3; i += 1) expectCode(await server.call("list_api_keys", { token: bad }), "ERR_AUTH_INVALID");

    const text = expectCode(await server.call("list_api_keys", { token: bad }), "ERR_RATE_LIMITED");
    expect(text).toMatch(/^ERR_RATE_LIMITED: .*\bWait 20 seconds\b/);
    expectNoToken(text, bad);
    // A missing token is a failed authentication too.
    expectCode(await server.call("list_api_keys"), "ERR_RATE_LIMITED");

    // A valid token is not held back by someone else's failures.
    const good = await merchantToken("merchant_a", "user_a", "api_keys:read", { now: nowSeconds(clock) });
    expectCode(await server.call("list_api_keys", { token: good }), "OK");

    clock.advance(20_000);
    expectCode(await server.call("list_api_keys", { token: bad }), "ERR_AUTH_INVALID");
    expectCode(await server.call("list_api_keys", { token: bad }), "ERR_RATE_LIMITED");
  });

  it("limits reads per principal, separately for each subject and merchant, and refills", async () => {
    const clock = testClock();
    server = await startTestServer({ clock, env: { API_KEYS_MCP_RATE_LIMIT_READ: "2" } });
    const now = nowSeconds(clock);
    const alice = await merchantToken("merchant_a", "alice", undefined, { now });
    const bob = await merchantToken("merchant_a", "bob", undefined, { now });
    const aliceElsewhere = await merchantToken("merchant_b", "alice", undefined, { now });

    expectCode(await server.call("list_api_keys", { token: alice }), "OK");
    expectCode(await server.call("get_api_key", { key_id: MISSING_KEY_ID, token: alice }), "ERR_NOT_FOUND");
    const text = expectCode(await server.call("list_api_keys", { token: alice }), "ERR_RATE_LIMITED");
    expect(text).toMatch(/\bWait 30 seconds\b/);

    expectCode(await server.call("list_api_keys", { token: bob }), "OK");
    expectCode(await server.call("list_api_keys", { token: aliceElsewhere }), "OK");
    // Reads and writes have separate buckets.
    expectCode(await server.call("create_api_key", { name: "still writable", token: alice }), "OK");

    clock.advance(30_000);
    expectCode(await server.call("list_api_keys", { token: alice }), "OK");
    expectCode(await server.call("list_api_keys", { token: alice }), "ERR_RATE_LIMITED");
  });

  it("limits writes per principal and refills", async () => {
    const clock = testClock();
    server = await startTestServer({ clock, env: { API_KEYS_MCP_RATE_LIMIT_WRITE: "1" } });
    const now = nowSeconds(clock);
    const alice = await merchantToken("merchant_a", "alice", undefined, { now });
    const bob = await merchantToken("merchant_a", "bob", undefined, { now });

    expectCode(await server.call("create_api_key", { name: "one", token: alice }), "OK");
    const text = expectCode(await server.call("create_api_key", { name: "two", token: alice }), "ERR_RATE_LIMITED");
    expect(text).toMatch(/\bWait 60 seconds\b/);
    expect(keyTable(server)).toHaveLength(1);
    expectCode(await server.call("list_api_keys", { token: alice }), "OK");
    expectCode(await server.call("create_api_key", { name: "bob's", token: bob }), "OK");

    clock.advance(60_000);
    expectCode(await server.call("create_api_key", { name: "three", token: alice }), "OK");
    expect(keyTable(server)).toHaveLength(3);
  });
});

describe("a denied call changes nothing but its audit row (E4)", () => {
  it("leaves api_keys and earlier audit rows as they were", async () => {
    const clock = testClock();
    server = await startTestServer({ clock });
    const now = nowSeconds(clock);
    const owner = await merchantToken("merchant_a", "owner", undefined, { now });
    const first = await server.call("create_api_key", { name: "first", token: owner });
    await server.call("create_api_key", { name: "second", token: owner });
    if (!first.ok) throw new Error("setup failed");
    const keyId = first.data.key.key_id as string;

    const keysBefore = keyTable(server);
    const auditBefore = auditRows(server);
    expect(auditBefore).toHaveLength(2);
    clock.advance(1000);

    const reader = await merchantToken("merchant_a", "reader", "api_keys:read", { now });
    const expired = await merchantToken("merchant_a", "owner", undefined, { now: now - 7200, ttl: 3600 });
    const denied: [string, Record<string, unknown>, string][] = [
      ["create_api_key", { name: "third", token: reader }, "ERR_FORBIDDEN"],
      ["update_api_key", { key_id: keyId, name: "renamed", token: reader }, "ERR_FORBIDDEN"],
      ["delete_api_key", { key_id: keyId, token: reader }, "ERR_FORBIDDEN"],
      ["update_api_key", { key_id: keyId, description: "changed", token: expired }, "ERR_AUTH_EXPIRED"],
      ["delete_api_key", { key_id: keyId, token: expired }, "ERR_AUTH_EXPIRED"],
      ["delete_api_key", { key_id: keyId }, "ERR_AUTH_MISSING"],
      ["rotate_api_key", { key_id: keyId, grace_period: "0", token: reader }, "ERR_FORBIDDEN"],
      ["rotate_api_key", { key_id: keyId, grace_period: "0", token: expired }, "ERR_AUTH_EXPIRED"],
    ];
    for (const [tool, args, code] of denied) expectCode(await server.call(tool, args), code);

    expect(keyTable(server)).toEqual(keysBefore);
    const auditAfter = auditRows(server);
    expect(auditAfter.slice(0, 2)).toEqual(auditBefore);
    expect(auditAfter.slice(2).map((row) => [row.action, row.outcome, row.tool, row.reason])).toEqual(
      denied.map(([tool, , code]) => ["auth.denied", "denied", tool, code]),
    );
    // Each denial, written in a transaction of its own, extends the one hash chain (S4).
    expect(auditAfter.map((row) => row.prev_hash)).toEqual([GENESIS_HASH, ...auditAfter.slice(0, -1).map((row) => row.hash)]);
    for (const row of auditAfter) expect(row.hash).toMatch(/^[0-9a-f]{64}$/);
  });
});
