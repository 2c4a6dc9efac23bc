import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createTokenResolver, readFileHead } from "../../src/auth/token-source.js";
import { AppError } from "../../src/errors.js";
import { loadConfig } from "../../src/config.js";
import { createLogger } from "../../src/log.js";
import { createServer } from "../../src/server.js";
import { createServices } from "../../src/services.js";
import { startTestServer, testClock, type TestServer } from "../helpers/server.js";
import { merchantToken, signToken, TEST_SECRET } from "../helpers/tokens.js";

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

describe("which assistant acted: the MCP client in audit events", () => {
  it("records the client's initialize name and version with every change and denial, and lists them", async () => {
    const server = await startTestServer({ clientInfo: { name: "claude-code", version: "2.1.0" } });
    try {
      const token = await merchantToken("merchant_c", "carol");
      const created = await server.call("create_api_key", { name: "one", token });
      if (!created.ok) throw new Error(created.text);
      const keyId = created.data.key.key_id as string;
      await server.call("update_api_key", { key_id: keyId, name: "renamed", token });
      await server.call("rotate_api_key", { key_id: keyId, grace_period: "0", token });
      await server.call("delete_api_key", { key_id: keyId, token });
      await server.call("delete_api_key", { key_id: keyId, token: await merchantToken("merchant_c", "rita", "api_keys:read") });
      const listed = await server.call("list_audit_events", { token });
      if (!listed.ok) throw new Error(listed.text);
      const claude = { name: "claude-code", version: "2.1.0" };
      expect(listed.data.events.map((event: { action: string; actor: string; client: unknown }) => [event.action, event.actor, event.client])).toEqual([
        ["auth.denied", "rita", claude],
        ["api_key.revoked", "carol", claude],
        ["api_key.rotated", "carol", claude],
        ["api_key.updated", "carol", claude],
        ["api_key.created", "carol", claude],
      ]);
      const log = server.logs.find((line) => line.msg === "tool_call" && line.tool === "create_api_key");
      expect(log).toMatchObject({ client: "claude-code/2.1.0" });
    } finally {
      await server.close();
    }
  });

  it("stores a hostile client name cleaned: no control characters, no secret, bounded", async () => {
    const planted = "sk_live_" + "A".repeat(32);
    const server = await startTestServer({ clientInfo: { name: `evil\n{"fake":"line"}\u202E ${planted} ${"x".repeat(5000)}`, version: "1.0" } });
    try {
      const token = await merchantToken("merchant_c", "carol");
      expect((await server.call("create_api_key", { name: "one", token })).ok).toBe(true);
      const [row] = server.db!.prepare("SELECT client_name, client_version FROM audit_events").all() as { client_name: string; client_version: string }[];
      expect(row!.client_name).not.toMatch(/[\n\u202E]/);
      expect(row!.client_name).not.toContain("A".repeat(32));
      expect(row!.client_name.length).toBeLessThanOrEqual(64);
      expect(row!.client_version).toBe("1.0");
    } finally {
      await server.close();
    }
  });

  it("records no client when the server never saw an initialize (as on a server built for one HTTP request)", async () => {
    const { config, problems } = loadConfig({ env: { API_KEYS_MCP_JWT_SECRET: TEST_SECRET, API_KEYS_MCP_DB: ":memory:" }, platform: "linux", homedir: "/nonexistent", readFile: () => "" });
    const logger = createLogger({ level: "silent", write: () => {} });
    const services = createServices({ config, problems, logger, clock: Date.now });
    const resolveToken = createTokenResolver({ readFile: readFileHead });
    const { server, close } = createServer({ services, logger, version: "0.0.0-test", credentials: { from: "argument", resolveToken } });
    const [ours, theirs] = InMemoryTransport.createLinkedPair();
    const answers: JSONRPCMessage[] = [];
    ours.onmessage = (message) => void answers.push(message);
    await server.connect(theirs);
    await ours.start();
    try {
      const token = await merchantToken("merchant_c", "carol");
      await ours.send({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "create_api_key", arguments: { name: "raw", token } } });
      await vi.waitFor(() => expect(answers).toHaveLength(1));
      await ours.send({ jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "list_audit_events", arguments: { token } } });
      await vi.waitFor(() => expect(answers).toHaveLength(2));
      const listed = (answers[1] as unknown as { result: { structuredContent: { events: { action: string; client: unknown }[] } } }).result.structuredContent;
      expect(listed.events).toEqual([expect.objectContaining({ action: "api_key.created", client: null })]);
    } finally {
      await ours.close();
      await close();
      if (!(services instanceof AppError)) await services.repository.close();
    }
  });
});
