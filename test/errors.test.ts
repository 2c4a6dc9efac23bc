import Database from "better-sqlite3";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ERROR_CODES, type ErrorCode } from "../src/errors.js";
import { changeEvents, rows } from "./helpers/db.js";
import { startTestServer, testClock, type CallOutcome, type TestServer, type TestServerOptions } from "./helpers/server.js";
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

  interface Failure {
    label: string;
    text: string;
  }

  /** Runs a failing call, checks that it changed no key and no change event, and returns its text. */
  async function expectFailure(label: string, code: string, run: () => Promise<CallOutcome>): Promise<Failure> {
    const keysBefore = rows(server.db!, "api_keys");
    const eventsBefore = changeEvents(server.db!);
    const result = await run();
    if (result.ok) throw new Error(`${label}: the call succeeded`);
    expect(result.code, label).toBe(code);
    expect(result.text.startsWith(`${code}: `), label).toBe(true);
    expect(rows(server.db!, "api_keys"), label).toEqual(keysBefore);
    expect(changeEvents(server.db!), label).toEqual(eventsBefore);
    return { label, text: result.text };
  }

  /** A call on a server of its own, for failures the shared one is not set up to give. */
  async function failureOn(label: string, code: string, options: TestServerOptions, run: (other: TestServer) => Promise<CallOutcome>): Promise<Failure> {
    const other = await startTestServer(options);
    try {
      const result = await run(other);
      if (result.ok) throw new Error(`${label}: the call succeeded`);
      expect(result.code, label).toBe(code);
      return { label, text: result.text };
    } finally {
      await other.close();
    }
  }

  /**
   * One way to reach each code. Typed by ErrorCode, so a new code does not compile without one.
   * Each runs at most once (see `failure`): the coverage test below asks for all of them and so
   * does not depend on which tests ran before it.
   */
  const CASES: Record<ErrorCode, { how: string; run: () => Promise<Failure> }> = {
    ERR_AUTH_MISSING: {
      how: "no token anywhere",
      run: () => expectFailure("no token", "ERR_AUTH_MISSING", () => server.call("list_api_keys")),
    },
    ERR_AUTH_INVALID: {
      how: "a token signed with another secret",
      run: async () => {
        const forged = await merchantToken("merchant_e", "erin", undefined, { secret: "another-secret-that-is-long-enough-000" });
        const failure = await expectFailure("forged", "ERR_AUTH_INVALID", () => server.call("create_api_key", { name: "x", token: forged }));
        expect(failure.text).not.toContain(forged);
        return failure;
      },
    },
    ERR_AUTH_EXPIRED: {
      how: "an expired token",
      run: async () => {
        const expired = await merchantToken("merchant_e", "erin", undefined, { now: Math.floor(clock() / 1000) - 7200, ttl: 3600 });
        return expectFailure("expired", "ERR_AUTH_EXPIRED", () => server.call("delete_api_key", { key_id: keyId, token: expired }));
      },
    },
    ERR_FORBIDDEN: {
      how: "a read-only token on a write tool",
      run: async () => {
        const readOnly = await merchantToken("merchant_e", "erin", "api_keys:read");
        return expectFailure("read-only", "ERR_FORBIDDEN", () => server.call("delete_api_key", { key_id: keyId, token: readOnly }));
      },
    },
    ERR_VALIDATION: {
      how: "a check beyond the schema",
      run: () =>
        expectFailure("past expiration", "ERR_VALIDATION", () =>
          server.call("update_api_key", { key_id: keyId, expiration: "2000-01-01T00:00:00Z", token }),
        ),
    },
    ERR_NOT_FOUND: {
      how: "an unknown key",
      run: () => expectFailure("unknown key", "ERR_NOT_FOUND", () => server.call("get_api_key", { key_id: "key_11111111111111111111", token })),
    },
    ERR_CONFLICT: {
      how: "updating a revoked key",
      run: () => expectFailure("revoked", "ERR_CONFLICT", () => server.call("update_api_key", { key_id: revokedId, name: "again", token })),
    },
    ERR_DECLINED: {
      how: "the user does not confirm revoking a live key",
      run: () =>
        failureOn("declined", "ERR_DECLINED", { onElicit: () => ({ action: "decline" }) }, async (asking) => {
          const created = await asking.call("create_api_key", { name: "live one", environment: "live", token });
          if (!created.ok) throw new Error(created.text);
          const result = await asking.call("delete_api_key", { key_id: created.data.key.key_id, token });
          expect(changeEvents(asking.db!).map((event) => event.action)).toEqual(["api_key.created"]);
          return result;
        }),
    },
    ERR_RATE_LIMITED: {
      how: "over the per-principal limit, with the seconds to wait",
      run: () =>
        failureOn("rate limited", "ERR_RATE_LIMITED", { env: { API_KEYS_MCP_RATE_LIMIT_READ: "2" } }, async (limited) => {
          const hasty = await merchantToken("merchant_r", "rita");
          expect((await limited.call("list_api_keys", { token: hasty })).ok).toBe(true);
          expect((await limited.call("list_api_keys", { token: hasty })).ok).toBe(true);
          const third = await limited.call("list_api_keys", { token: hasty });
          if (!third.ok) expect(third.text).toMatch(/Wait 30 seconds/);
          return third;
        }),
    },
    ERR_CONFIG: {
      how: "no verification key configured",
      run: async () => {
        const failure = await failureOn("unconfigured", "ERR_CONFIG", { env: { API_KEYS_MCP_JWT_SECRET: undefined } }, (unconfigured) =>
          unconfigured.call("list_api_keys", { token }),
        );
        expect(failure.text).toContain("API_KEYS_MCP_JWT_SECRET");
        return failure;
      },
    },
    ERR_BUSY: {
      how: "another process holds the write lock longer than the busy timeout",
      run: async () => {
        server.db!.pragma("busy_timeout = 50");
        const other = new Database(dbPath);
        try {
          other.exec("BEGIN IMMEDIATE");
          const failure = await expectFailure("locked", "ERR_BUSY", () => server.call("create_api_key", { name: "blocked", token }));
          other.exec("ROLLBACK");
          // Once the lock is gone the same call succeeds.
          expect((await server.call("create_api_key", { name: "unblocked", token })).ok).toBe(true);
          return failure;
        } finally {
          other.close();
          server.db!.pragma("busy_timeout = 5000");
        }
      },
    },
    ERR_INTERNAL: {
      how: "an unexpected failure carries a reference that is also in the log",
      run: () =>
        failureOn("dropped table", "ERR_INTERNAL", {}, async (broken) => {
          broken.db!.exec("DROP TABLE api_keys");
          const result = await broken.call("list_api_keys", { token });
          if (result.ok) return result;
          const reference = /reference (ref_[0-9A-Za-z]{12})/.exec(result.text)?.[1];
          expect(reference).toBeDefined();
          const logged = broken.logs.find((line) => line.msg === "tool_failed");
          expect(logged).toMatchObject({ reference, code: "ERR_INTERNAL", tool: "list_api_keys" });
          expect(JSON.stringify(logged)).toContain("no such table");
          return result;
        }),
    },
  };

  const produced = new Map<ErrorCode, Promise<Failure>>();
  function failure(code: ErrorCode): Promise<Failure> {
    let outcome = produced.get(code);
    if (outcome === undefined) produced.set(code, (outcome = CASES[code].run()));
    return outcome;
  }

  for (const code of ERROR_CODES) {
    it(`${code}: ${CASES[code].how}`, async () => {
      await failure(code);
    });
  }

  it("reached every code, and no message carries a token, key, hash, path, SQL or stack", async () => {
    const seen = new Map<string, Failure>();
    // One after another: ERR_BUSY holds the write lock while it runs.
    for (const code of ERROR_CODES) seen.set(code, await failure(code));
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
