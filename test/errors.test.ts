import Database from "better-sqlite3";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ERROR_CODES } from "../src/errors.js";
import { changeEvents, rows } from "./helpers/db.js";
import { startTestServer, testClock, type CallOutcome, type TestServer } from "./helpers/server.js";
import { tempDir } from "./helpers/spawn.js";
import { merchantToken, signToken, TEST_SECRET } from "./helpers/tokens.js";

/**
 * E1–E4: every code is reachable, every message is free of secrets and internals, and a failed
 * call changes nothing but (for denials) the audit log.
 */
describe("error codes (E1–E4)", () => {
  const dir = tempDir();
  const dbPath = join(dir.path, "errors.db");
  const clock = testClock();
  let server: TestServer;
  let token: string;
  let keyId: string;
  let revokedId: string;
  let plaintext: string;
  const seen = new Map<string, { label: string; text: string }>();

  beforeAll(async () => {
    server = await startTestServer({
      clock,
      env: { API_KEYS_MCP_DB: dbPath, API_KEYS_MCP_RATE_LIMIT_WRITE: "1000", API_KEYS_MCP_RATE_LIMIT_READ: "1000" },
    });
    token = await merchantToken("merchant_e", "erin");
    const created = await server.call("create_api_key", { name: "kept", token });
    const revoked = await server.call("create_api_key", { name: "revoked", token });
    if (!created.ok || !revoked.ok) throw new Error("setup failed");
    keyId = created.data.key.key_id;
    plaintext = created.data.api_key;
    revokedId = revoked.data.key.key_id;
    await server.call("delete_api_key", { key_id: revokedId, token });
  });
  afterAll(async () => {
    await server.close();
    dir.remove();
  });

  /** Runs a failing call, checks that it changed no key and no change event, and records its text. */
  async function expectFailure(label: string, code: string, run: () => Promise<CallOutcome>): Promise<string> {
    const keysBefore = rows(server.db!, "api_keys");
    const eventsBefore = changeEvents(server.db!);
    const result = await run();
    expect(result.ok, label).toBe(false);
    if (result.ok) return "";
    expect(result.code, label).toBe(code);
    expect(result.text.startsWith(`${code}: `), label).toBe(true);
    expect(rows(server.db!, "api_keys"), label).toEqual(keysBefore);
    expect(changeEvents(server.db!), label).toEqual(eventsBefore);
    seen.set(code, { label, text: result.text });
    return result.text;
  }

  it("ERR_AUTH_MISSING: no token anywhere", async () => {
    await expectFailure("no token", "ERR_AUTH_MISSING", () => server.call("list_api_keys"));
  });

  it("ERR_AUTH_INVALID: a token signed with another secret", async () => {
    const forged = await merchantToken("merchant_e", "erin", undefined, { secret: "another-secret-that-is-long-enough-000" });
    const text = await expectFailure("forged", "ERR_AUTH_INVALID", () => server.call("create_api_key", { name: "x", token: forged }));
    expect(text).not.toContain(forged);
  });

  it("ERR_AUTH_EXPIRED: an expired token", async () => {
    const expired = await merchantToken("merchant_e", "erin", undefined, { now: Math.floor(clock() / 1000) - 7200, ttl: 3600 });
    await expectFailure("expired", "ERR_AUTH_EXPIRED", () => server.call("delete_api_key", { key_id: keyId, token: expired }));
  });

  it("ERR_FORBIDDEN: a read-only token on a write tool", async () => {
    const readOnly = await merchantToken("merchant_e", "erin", "api_keys:read");
    await expectFailure("read-only", "ERR_FORBIDDEN", () => server.call("delete_api_key", { key_id: keyId, token: readOnly }));
  });

  it("ERR_VALIDATION: a check beyond the schema", async () => {
    await expectFailure("past expiration", "ERR_VALIDATION", () =>
      server.call("update_api_key", { key_id: keyId, expiration: "2000-01-01T00:00:00Z", token }),
    );
  });

  it("ERR_NOT_FOUND: an unknown key", async () => {
    await expectFailure("unknown key", "ERR_NOT_FOUND", () => server.call("get_api_key", { key_id: "key_11111111111111111111", token }));
  });

  it("ERR_CONFLICT: updating a revoked key", async () => {
    await expectFailure("revoked", "ERR_CONFLICT", () => server.call("update_api_key", { key_id: revokedId, name: "again", token }));
  });

  it("ERR_DECLINED: the user does not confirm revoking a live key", async () => {
    const asking = await startTestServer({ onElicit: () => ({ action: "decline" }) });
    try {
      const created = await asking.call("create_api_key", { name: "live one", environment: "live", token });
      if (!created.ok) throw new Error(created.text);
      const result = await asking.call("delete_api_key", { key_id: created.data.key.key_id, token });
      expect(result.ok ? "ok" : result.code).toBe("ERR_DECLINED");
      expect(changeEvents(asking.db!).map((event) => event.action)).toEqual(["api_key.created"]);
      if (!result.ok) seen.set("ERR_DECLINED", { label: "declined", text: result.text });
    } finally {
      await asking.close();
    }
  });

  it("ERR_RATE_LIMITED: over the per-principal limit, with the seconds to wait", async () => {
    const limited = await startTestServer({ env: { API_KEYS_MCP_RATE_LIMIT_READ: "2" } });
    try {
      const hasty = await merchantToken("merchant_r", "rita");
      expect((await limited.call("list_api_keys", { token: hasty })).ok).toBe(true);
      expect((await limited.call("list_api_keys", { token: hasty })).ok).toBe(true);
      const third = await limited.call("list_api_keys", { token: hasty });
      expect(third.ok ? "ok" : third.code).toBe("ERR_RATE_LIMITED");
      if (!third.ok) {
        expect(third.text).toMatch(/Wait 30 seconds/);
        seen.set("ERR_RATE_LIMITED", { label: "rate limited", text: third.text });
      }
    } finally {
      await limited.close();
    }
  });

  it("ERR_CONFIG: no verification key configured", async () => {
    const unconfigured = await startTestServer({ env: { API_KEYS_MCP_JWT_SECRET: undefined } });
    try {
      const result = await unconfigured.call("list_api_keys", { token });
      expect(result.ok ? "ok" : result.code).toBe("ERR_CONFIG");
      if (!result.ok) {
        expect(result.text).toContain("API_KEYS_MCP_JWT_SECRET");
        seen.set("ERR_CONFIG", { label: "unconfigured", text: result.text });
      }
    } finally {
      await unconfigured.close();
    }
  });

  it("ERR_BUSY: another process holds the write lock longer than the busy timeout", async () => {
    server.db!.pragma("busy_timeout = 50");
    const other = new Database(dbPath);
    try {
      other.exec("BEGIN IMMEDIATE");
      await expectFailure("locked", "ERR_BUSY", () => server.call("create_api_key", { name: "blocked", token }));
      other.exec("ROLLBACK");
      // Once the lock is gone the same call succeeds.
      expect((await server.call("create_api_key", { name: "unblocked", token })).ok).toBe(true);
    } finally {
      other.close();
      server.db!.pragma("busy_timeout = 5000");
    }
  });

  it("ERR_INTERNAL: an unexpected failure carries a reference that is also in the log", async () => {
    const broken = await startTestServer();
    try {
      broken.db!.exec("DROP TABLE api_keys");
      const result = await broken.call("list_api_keys", { token });
      expect(result.ok ? "ok" : result.code).toBe("ERR_INTERNAL");
      if (result.ok) return;
      const reference = /reference (ref_[0-9A-Za-z]{12})/.exec(result.text)?.[1];
      expect(reference).toBeDefined();
      const logged = broken.logs.find((line) => line.msg === "tool_failed");
      expect(logged).toMatchObject({ reference, code: "ERR_INTERNAL", tool: "list_api_keys" });
      expect(JSON.stringify(logged)).toContain("no such table");
      seen.set("ERR_INTERNAL", { label: "dropped table", text: result.text });
    } finally {
      await broken.close();
    }
  });

  it("reached every code, and no message carries a token, key, hash, path, SQL or stack", async () => {
    expect([...seen.keys()].sort()).toEqual([...ERROR_CODES].sort());
    const hash = rows(server.db!, "api_keys")[0]!.key_hash as string;
    for (const { label, text } of seen.values()) {
      expect(text, label).not.toContain(token);
      expect(text, label).not.toMatch(/eyJ[A-Za-z0-9_-]+\./);
      expect(text, label).not.toContain(plaintext);
      expect(text, label).not.toMatch(/(sk|pk)_(test|live)_[0-9A-Za-z]{5,}/);
      expect(text, label).not.toContain(hash);
      expect(text, label).not.toMatch(/[0-9a-f]{64}/);
      expect(text, label).not.toContain(dir.path);
      expect(text, label).not.toMatch(/\/(tmp|home|root|usr|var)\//);
      expect(text, label).not.toMatch(/\b(SELECT|INSERT|UPDATE|DELETE|FROM|WHERE|SQLITE_\w+|no such table)\b/);
      expect(text, label).not.toMatch(/\n\s+at |\.ts:\d+|\.js:\d+/);
      expect(text, label).not.toContain(TEST_SECRET);
    }
  });

  it("a token of unusual shape never reaches an error message", async () => {
    const odd = await signToken({ sub: "x", merchant_id: "m", scope: "nothing" });
    const result = await server.call("create_api_key", { name: "x", token: `  Bearer ${odd}  ` });
    expect(result.ok ? "ok" : result.code).toBe("ERR_FORBIDDEN");
    if (!result.ok) expect(result.text).not.toContain(odd.slice(0, 20));
  });
});
