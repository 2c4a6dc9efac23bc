import pg from "pg";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openVerifier } from "../../../src/lib.js";
import { migratePostgres } from "../../../src/store/postgres/migrate.js";
import { createPool } from "../../../src/store/postgres/pool.js";
import { PostgresKeyRepository } from "../../../src/store/postgres/repository.js";
import { createTestDatabase } from "../../helpers/postgres.js";
import { startTestServer, type TestServer } from "../../helpers/server.js";
import { merchantToken, TEST_SECRET } from "../../helpers/tokens.js";
import { runCli } from "../../helpers/cli.js";

/** `api-keys-mcp …` in-process, with the environment given. */
function run(argv: string[], env: Record<string, string>) {
  return runCli(argv, env, "/nonexistent-home");
}

describe("the server on PostgreSQL", () => {
  let url: string;
  let admin: pg.Pool;
  let server: TestServer | undefined;
  let token: string;

  beforeEach(async () => {
    url = await createTestDatabase();
    admin = createPool(url, { max: 2 });
    token = await merchantToken("merchant_pg", "alice");
  });
  afterEach(async () => {
    await server?.close();
    server = undefined;
    await admin.end();
  });

  it("migrates a fresh database once, even with several instances starting at once", async () => {
    const repositories = Array.from({ length: 4 }, () => new PostgresKeyRepository(createPool(url, { max: 2 })));
    await Promise.all(repositories.map((repository) => repository.ready()));
    const { rows } = await admin.query("SELECT version, name FROM schema_migrations ORDER BY version");
    expect(rows).toEqual([{ version: 10, name: "initial" }]);
    expect((await admin.query("SELECT count(*)::int AS n FROM store_meta")).rows[0]).toEqual({ n: 1 });
    await Promise.all(repositories.map((repository) => repository.close()));
  });

  it("serves every tool, stores only hashes, and `audit verify --database-url` checks the chain", async () => {
    server = await startTestServer({ env: { API_KEYS_MCP_DATABASE_URL: url, API_KEYS_MCP_TOKEN: token } });
    const created = await server.call("create_api_key", { name: "pg key", expiration: "30d", environment: "live" });
    if (!created.ok) throw new Error(created.text);
    const id = created.data.key.key_id;
    expect((await server.call("verify_api_key", { api_key: created.data.api_key })).ok).toBe(true);
    expect(await server.call("update_api_key", { key_id: id, description: "on postgres" })).toMatchObject({ ok: true });
    const rotated = await server.call("rotate_api_key", { key_id: id, grace_period: "1h" });
    if (!rotated.ok) throw new Error(rotated.text);
    expect(await server.call("delete_api_key", { key_id: rotated.data.key.key_id })).toMatchObject({ ok: true, data: { key: { status: "revoked" } } });
    const listed = await server.call("list_api_keys", { status: "all" });
    expect(listed.ok && listed.data.keys.map((key: { key_id: string }) => key.key_id)).toEqual([rotated.data.key.key_id, id]);
    const events = await server.call("list_audit_events", {});
    expect(events.ok && events.data.events.map((event: { action: string }) => event.action)).toEqual([
      "api_key.revoked",
      "api_key.rotated",
      "api_key.updated",
      "api_key.created",
    ]);
    const got = await server.call("get_api_key", { key_id: id });
    expect(got.ok && got.data.key.usage_count).toBe(1);

    const everything = JSON.stringify((await admin.query("SELECT * FROM api_keys")).rows) + JSON.stringify((await admin.query("SELECT * FROM audit_events")).rows);
    expect(everything).not.toContain(created.data.api_key);
    expect(everything).not.toContain(rotated.data.api_key);

    const intact = await run(["audit", "verify", "--database-url", url], {});
    expect(intact).toMatchObject({ code: 0, stderr: "" });
    expect(intact.stdout).toMatch(/audit chain intact: 4 rows checked; head hash [0-9a-f]{64}/);
    // The same from the environment, as the server is configured.
    expect((await run(["audit", "verify"], { API_KEYS_MCP_DATABASE_URL: url })).code).toBe(0);

    await admin.query("ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update");
    await admin.query("UPDATE audit_events SET actor = 'mallory' WHERE seq = (SELECT min(seq) + 1 FROM audit_events)");
    const broken = await run(["audit", "verify", "--database-url", url], {});
    expect(broken.code).toBe(1);
    expect(broken.stdout).toMatch(/BROKEN at row \d+ .*content does not match/);
  });

  it("refuses UPDATE, DELETE and TRUNCATE of the audit log, and an upsert over one of its rows", async () => {
    server = await startTestServer({ env: { API_KEYS_MCP_DATABASE_URL: url, API_KEYS_MCP_TOKEN: token } });
    expect((await server.call("create_api_key", { name: "k" })).ok).toBe(true);
    for (const sql of [
      "UPDATE audit_events SET actor = 'x'",
      "DELETE FROM audit_events",
      "TRUNCATE audit_events",
      "INSERT INTO audit_events (event_id, occurred_at, action, outcome, prev_hash, hash, hash_alg) SELECT event_id, 1, 'auth.denied', 'denied', '', '', 'sha256' FROM audit_events ON CONFLICT (event_id) DO UPDATE SET actor = 'x'",
    ]) {
      await expect(admin.query(sql), sql).rejects.toThrow("audit_events is append-only");
    }
    expect((await admin.query("SELECT count(*)::int AS n FROM audit_events")).rows[0]).toEqual({ n: 1 });
  });

  it("refuses a database written by a newer version with ERR_CONFIG on every call, and changes nothing", async () => {
    await migratePostgres(admin);
    await admin.query("INSERT INTO schema_migrations (version, name) VALUES (990, 'from the future')");
    server = await startTestServer({ env: { API_KEYS_MCP_DATABASE_URL: url, API_KEYS_MCP_TOKEN: token } });
    for (const tool of ["list_api_keys", "create_api_key"]) {
      const outcome = await server.call(tool, tool === "create_api_key" ? { name: "x" } : {});
      expect(outcome).toMatchObject({ ok: false, code: "ERR_CONFIG" });
      expect(outcome.ok || outcome.text).toContain("newer version of api-keys-mcp");
      expect(outcome.ok || outcome.text).not.toContain(new URL(url).pathname.slice(1));
    }
    expect((await admin.query("SELECT count(*)::int AS n FROM api_keys")).rows[0]).toEqual({ n: 0 });
  });

  it("answers ERR_BUSY, quickly and without a crash, while PostgreSQL cannot be reached", async () => {
    const closed = new URL(url);
    closed.port = "9"; // discard: nothing listens on it
    server = await startTestServer({ env: { API_KEYS_MCP_DATABASE_URL: closed.toString(), API_KEYS_MCP_TOKEN: token } });
    for (const tool of ["list_api_keys", "create_api_key"]) {
      const outcome = await server.call(tool, tool === "create_api_key" ? { name: "x" } : {});
      expect(outcome).toMatchObject({ ok: false, code: "ERR_BUSY" });
      expect(outcome.ok || outcome.text).not.toMatch(/postgres:|127\.0\.0\.1|ECONNREFUSED/);
    }
    const failed = server.logs.find((line) => line.msg === "database_open_failed");
    expect(JSON.stringify(failed)).not.toContain("test-password");
  });

  it("refuses API_KEYS_MCP_DATABASE_URL beside API_KEYS_MCP_DB, and a URL that is not PostgreSQL's, with ERR_CONFIG", async () => {
    server = await startTestServer({ env: { API_KEYS_MCP_DATABASE_URL: url, API_KEYS_MCP_DB: ":memory:", API_KEYS_MCP_TOKEN: token } });
    const both = await server.call("list_api_keys", {});
    expect(both).toMatchObject({ ok: false, code: "ERR_CONFIG" });
    expect(both.ok || both.text).toContain("remove one of API_KEYS_MCP_DATABASE_URL and API_KEYS_MCP_DB");
    await server.close();
    server = await startTestServer({ env: { API_KEYS_MCP_DATABASE_URL: "mysql://x@y/z", API_KEYS_MCP_TOKEN: token } });
    expect(await server.call("list_api_keys", {})).toMatchObject({ ok: false, code: "ERR_CONFIG" });
  });

  it("lets openVerifier({ databaseUrl }) verify keys the server issued, count their uses, and refuse a revoked key at once", async () => {
    server = await startTestServer({ env: { API_KEYS_MCP_DATABASE_URL: url, API_KEYS_MCP_TOKEN: token } });
    const created = await server.call("create_api_key", { name: "service key", environment: "live" });
    if (!created.ok) throw new Error(created.text);
    const verifier = openVerifier({ databaseUrl: url, usageFlushMs: 3_600_000 });
    try {
      expect(await verifier.verify(created.data.api_key, { type: "secret", environment: "live" })).toMatchObject({
        valid: true,
        code: "VALID",
        merchant_id: "merchant_pg",
        key: { key_id: created.data.key.key_id, usage_count: 1 },
      });
      expect(await verifier.verify(created.data.api_key, { environment: "test" })).toEqual({ valid: false, code: "WRONG_ENVIRONMENT" });
      expect(await verifier.verify(created.data.api_key)).toMatchObject({ code: "VALID", key: { usage_count: 2 } });
      await server.call("delete_api_key", { key_id: created.data.key.key_id });
      expect(await verifier.verify(created.data.api_key)).toMatchObject({ valid: false, code: "REVOKED" });
    } finally {
      await verifier.close();
    }
    // close() wrote the counted uses, added to the store's.
    const got = await server.call("get_api_key", { key_id: created.data.key.key_id });
    expect(got.ok && got.data.key.usage_count).toBe(2);
    expect(() => openVerifier({ databaseUrl: url, db: ":memory:" })).toThrow(TypeError);
  });
});

describe("the database password never reaches the log", () => {
  it("does not put the password of API_KEYS_MCP_DATABASE_URL in server_started or any log line", async () => {
    const url = await createTestDatabase();
    const server = await startTestServer({ env: { API_KEYS_MCP_DATABASE_URL: url, API_KEYS_MCP_JWT_SECRET: TEST_SECRET } });
    try {
      await server.call("list_api_keys", { token: await merchantToken("m") });
      expect(server.rawLogs.join("\n")).not.toContain(new URL(url).password);
    } finally {
      await server.close();
    }
  });
});
