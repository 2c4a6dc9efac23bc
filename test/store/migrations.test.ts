import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openDatabase } from "../../src/store/database.js";
import { encodeCursor } from "../../src/store/cursor.js";
import { migrate, SchemaTooNewError } from "../../src/store/migrate.js";
import { initial } from "../../src/store/migrations/010-initial.js";
import { MIGRATIONS } from "../../src/store/migrations/index.js";
import { SqliteKeyRepository } from "../../src/store/sqlite-repository.js";
import { ONE_CALL_PER_TOOL } from "../helpers/rpc.js";
import { startTestServer, testClock } from "../helpers/server.js";
import { tempDir } from "../helpers/spawn.js";
import { merchantToken } from "../helpers/tokens.js";

const LATEST = MIGRATIONS.at(-1)!.version;
/** A version after every real step, for steps made up by these tests. */
const NEXT = LATEST + 10;

/** Every schema object, in a stable order; the SQL too, so "unchanged" means byte for byte. */
function schemaOf(db: Database.Database): { type: string; name: string; tbl_name: string; sql: string | null }[] {
  return db
    .prepare("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name")
    .all() as { type: string; name: string; tbl_name: string; sql: string | null }[];
}

function userVersion(db: Database.Database): number {
  return db.pragma("user_version", { simple: true }) as number;
}

/** A database file whose user_version is ahead of this code. */
function writeFutureDatabase(path: string, version = LATEST + 1): void {
  const raw = new Database(path);
  raw.exec("CREATE TABLE from_the_future (x INTEGER)");
  raw.pragma(`user_version = ${version}`);
  raw.close();
}

const newKey = (n: number) => ({
  keyId: `key_${String(n).padStart(20, "0")}`,
  name: `key ${n}`,
  description: null,
  type: "secret" as const,
  environment: "test" as const,
  prefix: "sk_test_abcd",
  hash: String(n).padStart(64, "0"),
  hashVersion: 1,
  expiresAt: null,
  scopes: [],
});

describe("migrations (S1)", () => {
  let dir: ReturnType<typeof tempDir>;
  let file: string;
  const open: Database.Database[] = [];
  beforeEach(() => {
    dir = tempDir();
    file = join(dir.path, "keys.db");
  });
  afterEach(() => {
    for (const db of open.splice(0)) if (db.open) db.close();
    dir.remove();
  });
  const track = (db: Database.Database) => {
    open.push(db);
    return db;
  };

  it("knows 010-initial and 020-lifecycle, 20 being the latest schema version", () => {
    expect(MIGRATIONS.map((m) => [m.version, m.name])).toEqual([
      [10, "initial"],
      [20, "lifecycle"],
    ]);
    expect(LATEST).toBe(20);
  });

  it("creates the tables, indexes and triggers on a fresh file and records the latest version", () => {
    const db = track(openDatabase(file));
    expect(userVersion(db)).toBe(LATEST);
    expect(schemaOf(db).map(({ type, name, tbl_name }) => [type, name, tbl_name])).toEqual([
      ["index", "api_keys_by_tenant", "api_keys"],
      ["index", "audit_events_by_key", "audit_events"],
      ["index", "audit_events_by_tenant", "audit_events"],
      ["index", "sqlite_autoindex_api_keys_1", "api_keys"],
      ["index", "sqlite_autoindex_api_keys_2", "api_keys"],
      ["index", "sqlite_autoindex_audit_events_1", "audit_events"],
      ["table", "api_keys", "api_keys"],
      ["table", "audit_events", "audit_events"],
      ["trigger", "audit_events_no_delete", "audit_events"],
      ["trigger", "audit_events_no_update", "audit_events"],
    ]);
    const indexed = (index: string) => (db.pragma(`index_info(${index})`) as { name: string }[]).map((c) => c.name);
    expect(indexed("api_keys_by_tenant")).toEqual(["tenant_id", "seq"]);
    expect(indexed("audit_events_by_tenant")).toEqual(["tenant_id", "seq"]);
    expect(indexed("audit_events_by_key")).toEqual(["key_id", "seq"]);
    expect(indexed("sqlite_autoindex_api_keys_1")).toEqual(["key_id"]);
    expect(indexed("sqlite_autoindex_api_keys_2")).toEqual(["key_hash"]);
    expect(indexed("sqlite_autoindex_audit_events_1")).toEqual(["event_id"]);
  });

  it("is a no-op when run again, in the same connection and on reopening the file", async () => {
    const db = track(openDatabase(file));
    const repo = new SqliteKeyRepository(db, testClock(1_700_000_000_000));
    await repo.createKey({ tenantId: "t", subject: "s" }, newKey(1));
    const schema = schemaOf(db);

    expect(migrate(db)).toEqual({ from: LATEST, to: LATEST });
    expect(schemaOf(db)).toEqual(schema);
    db.close();

    const again = track(openDatabase(file));
    expect(userVersion(again)).toBe(LATEST);
    expect(schemaOf(again)).toEqual(schema);
    expect(again.prepare("SELECT key_id FROM api_keys").pluck().all()).toEqual([newKey(1).keyId]);
    expect(again.prepare("SELECT COUNT(*) FROM audit_events").pluck().get()).toBe(1);
  });

  it("applies only the steps newer than the recorded version", () => {
    const db = track(openDatabase(file));
    const next = [...MIGRATIONS, { version: NEXT, name: "next", sql: "CREATE TABLE next_step (x INTEGER);" }];
    expect(migrate(db, next)).toEqual({ from: LATEST, to: NEXT });
    expect(userVersion(db)).toBe(NEXT);
    expect(db.prepare("SELECT name FROM sqlite_schema WHERE name = 'next_step'").pluck().get()).toBe("next_step");
    // The earlier steps did not run again (they would fail on the existing tables and columns).
    expect(migrate(db, next)).toEqual({ from: NEXT, to: NEXT });
  });

  it("upgrades a phase 1 file in place: keys keep their values and gain no scopes and no rotation links", async () => {
    const old = track(new Database(file));
    expect(migrate(old, [initial])).toEqual({ from: 0, to: 10 });
    old
      .prepare(
        `INSERT INTO api_keys (key_id, tenant_id, name, description, type, environment, prefix, key_hash, hash_version,
           created_at, updated_at, expires_at, created_by, usage_count, last_used_at)
         VALUES (?, 't', 'phase 1 key', 'kept', 'secret', 'test', 'sk_test_abcd', ?, 1, 1000, 2000, NULL, 's', 3, 1500)`,
      )
      .run(newKey(1).keyId, newKey(1).hash);
    old.close();

    const db = track(openDatabase(file));
    expect(userVersion(db)).toBe(LATEST);
    const repo = new SqliteKeyRepository(db, testClock(1_700_000_000_000), { closeDatabase: false });
    expect(await repo.getKey("t", newKey(1).keyId)).toEqual({
      keyId: newKey(1).keyId,
      tenantId: "t",
      name: "phase 1 key",
      description: "kept",
      type: "secret",
      environment: "test",
      prefix: "sk_test_abcd",
      createdAt: 1000,
      updatedAt: 2000,
      expiresAt: null,
      revokedAt: null,
      lastUsedAt: 1500,
      usageCount: 3,
      createdBy: "s",
      scopes: [],
      rotatedFrom: null,
      rotatedTo: null,
    });
    await repo.close();
  });

  it("rolls a failing step back completely: no half schema, version unchanged", () => {
    const db = track(openDatabase(file));
    const broken = [...MIGRATIONS, { version: NEXT, name: "broken", sql: "CREATE TABLE half_done (x INTEGER); INSERT INTO no_such_table VALUES (1);" }];
    expect(() => migrate(db, broken)).toThrow(/no such table/);
    expect(userVersion(db)).toBe(LATEST);
    expect(db.prepare("SELECT COUNT(*) FROM sqlite_schema WHERE name = 'half_done'").pluck().get()).toBe(0);
  });

  it("refuses a database newer than the code with SchemaTooNewError and a clear message", () => {
    writeFutureDatabase(file, LATEST + 1);
    let thrown: unknown;
    try {
      track(openDatabase(file));
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(SchemaTooNewError);
    const error = thrown as SchemaTooNewError;
    expect(error.found).toBe(LATEST + 1);
    expect(error.supported).toBe(LATEST);
    expect(error.message).toBe(
      "the database has schema version 21, newer than this api-keys-mcp supports (20); upgrade api-keys-mcp, or point API_KEYS_MCP_DB at another file",
    );

    // Nothing of this version's schema was written into the newer file.
    const raw = track(new Database(file, { readonly: true }));
    expect(userVersion(raw)).toBe(LATEST + 1);
    expect(schemaOf(raw).map((o) => o.name)).toEqual(["from_the_future"]);
  });

  it("refuses a newer schema also through migrate() on an open connection", () => {
    const db = track(new Database(":memory:"));
    db.pragma("user_version = 99");
    expect(() => migrate(db)).toThrow(SchemaTooNewError);
    expect(userVersion(db)).toBe(99);
  });

  it("answers every tool call with ERR_CONFIG, without a file path, when wired through createServices", async () => {
    writeFutureDatabase(file);
    const server = await startTestServer({ env: { API_KEYS_MCP_DB: file, API_KEYS_MCP_TOKEN: await merchantToken("m_future") } });
    try {
      const outcome = await server.call("list_api_keys", {});
      expect(outcome).toEqual({
        ok: false,
        code: "ERR_CONFIG",
        text: "ERR_CONFIG: The key database was written by a newer version of api-keys-mcp. Ask the operator to upgrade api-keys-mcp, or to set API_KEYS_MCP_DB to another file.",
      });
      // The operator finds the detail, path included, in the log.
      const failure = server.logs.find((l) => l.msg === "database_open_failed");
      expect(failure?.path).toBe(file);
      expect((failure?.error as { name?: string } | undefined)?.name).toBe("SchemaTooNewError");
    } finally {
      await server.close();
    }
  });

  // The same through every tool. In-process: what a spawned server answers with a problem in its
  // configuration is covered by stdio.test.ts.
  it("answers ERR_CONFIG to every tool, naming no path", async () => {
    writeFutureDatabase(file);
    const server = await startTestServer({ env: { API_KEYS_MCP_DB: file, API_KEYS_MCP_TOKEN: await merchantToken("m_future") } });
    try {
      for (const [tool, args] of ONE_CALL_PER_TOOL) {
        const outcome = await server.call(tool, args);
        expect(outcome.ok, tool).toBe(false);
        if (outcome.ok) continue;
        expect(outcome.code, tool).toBe("ERR_CONFIG");
        expect(outcome.text, tool).toContain("newer version of api-keys-mcp");
        expect(outcome.text, tool).not.toContain(dir.path);
        expect(outcome.text, tool).not.toMatch(/\/[\w.-]+\/[\w.-]+/);
      }
    } finally {
      await server.close();
    }
    const raw = track(new Database(file, { readonly: true }));
    expect(userVersion(raw)).toBe(LATEST + 1);
    expect(schemaOf(raw).map((o) => o.name)).toEqual(["from_the_future"]);
  });
});

describe("connection settings (S1)", () => {
  let dir: ReturnType<typeof tempDir>;
  let db: Database.Database | undefined;
  beforeEach(() => {
    dir = tempDir();
  });
  afterEach(() => {
    if (db?.open) db.close();
    db = undefined;
    dir.remove();
  });

  it("opens a file database in WAL mode with foreign keys on, NORMAL sync and a 5 s busy timeout", () => {
    db = openDatabase(join(dir.path, "keys.db"));
    expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(db.pragma("foreign_keys", { simple: true })).toBe(1);
    expect(db.pragma("busy_timeout", { simple: true })).toBe(5000);
    expect(db.pragma("synchronous", { simple: true })).toBe(1);
  });

  it("takes the busy timeout from the options", () => {
    db = openDatabase(join(dir.path, "keys.db"), { busyTimeoutMs: 1234 });
    expect(db.pragma("busy_timeout", { simple: true })).toBe(1234);
  });

  it("keeps WAL mode in the file, so another connection sees it too", () => {
    const path = join(dir.path, "keys.db");
    openDatabase(path).close();
    db = new Database(path, { readonly: true });
    expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
  });
});

describe("audit table is append-only (S3)", () => {
  let db: Database.Database;
  beforeEach(async () => {
    db = openDatabase(":memory:");
    const repo = new SqliteKeyRepository(db, testClock(1_700_000_000_000));
    await repo.createKey({ tenantId: "t", subject: "s" }, newKey(1));
  });
  afterEach(() => db.close());

  const snapshot = () => db.prepare("SELECT * FROM audit_events ORDER BY seq").all();

  it("refuses UPDATE", () => {
    const before = snapshot();
    expect(before).toHaveLength(1);
    expect(() => db.prepare("UPDATE audit_events SET action = 'api_key.tampered'").run()).toThrow("audit_events is append-only");
    expect(() => db.prepare("UPDATE audit_events SET changes = NULL WHERE seq = 1").run()).toThrow("audit_events is append-only");
    // Migration 020 recreated this trigger; it covers the hash columns too.
    expect(() => db.prepare(`UPDATE audit_events SET prev_hash = '${"0".repeat(64)}', hash = '${"0".repeat(64)}'`).run()).toThrow("audit_events is append-only");
    expect(snapshot()).toEqual(before);
  });

  it("refuses DELETE", () => {
    const before = snapshot();
    expect(() => db.prepare("DELETE FROM audit_events").run()).toThrow("audit_events is append-only");
    expect(() => db.prepare("DELETE FROM audit_events WHERE seq = 1").run()).toThrow("audit_events is append-only");
    expect(snapshot()).toEqual(before);
  });

  it("still accepts INSERT", () => {
    db.prepare("INSERT INTO audit_events (event_id, occurred_at, action, outcome) VALUES ('evt_x', 1, 'auth.denied', 'denied')").run();
    expect(snapshot()).toHaveLength(2);
  });
});

describe("query plans use the indexes", () => {
  let db: Database.Database;
  let repo: SqliteKeyRepository;
  const prepared: string[] = [];

  beforeEach(async () => {
    db = openDatabase(":memory:");
    // Record the SQL the repository prepares (the real statements run unchanged), so the plans
    // below are those of the repository's own queries, not of copies that could drift.
    const prepare = db.prepare.bind(db);
    db.prepare = ((source: string) => {
      prepared.push(source);
      return prepare(source);
    }) as typeof db.prepare;
    repo = new SqliteKeyRepository(db, testClock(1_700_000_000_000));
    for (let n = 0; n < 30; n++) await repo.createKey({ tenantId: n % 2 ? "t1" : "t2", subject: "s" }, newKey(n));
  });
  afterEach(() => {
    prepared.length = 0;
    db.close();
  });

  const planOf = (source: string, params: Record<string, unknown> | unknown[]) =>
    (db.prepare(`EXPLAIN QUERY PLAN ${source}`).all(params) as { detail: string }[]).map((row) => row.detail);

  const listParams = { tenantId: "t1", after: 10, environment: "test", type: "secret", now: 1_700_000_000_000, horizon: 1_700_604_800_000, limit: 21 };

  it("gets one key through the key_id unique index", async () => {
    await repo.getKey("t1", newKey(1).keyId);
    const select = prepared.filter((s) => /^SELECT[\s\S]*WHERE key_id = \?/.test(s));
    expect(select).toHaveLength(1);
    expect(planOf(select[0]!, [newKey(1).keyId, "t1"])).toEqual(["SEARCH api_keys USING INDEX sqlite_autoindex_api_keys_1 (key_id=?)"]);
  });

  it("finds a key by its hash, the verification hot path (V1), through the key_hash unique index", async () => {
    expect(await repo.findKeyByHash(newKey(1).hash)).toMatchObject({ keyId: newKey(1).keyId });
    const select = prepared.filter((s) => /^SELECT[\s\S]*WHERE key_hash = \?/.test(s));
    expect(select).toHaveLength(1);
    expect(planOf(select[0]!, [newKey(1).hash])).toEqual(["SEARCH api_keys USING INDEX sqlite_autoindex_api_keys_2 (key_hash=?)"]);
  });

  it.each([
    ["first page", { limit: 20 }, "SEARCH api_keys USING INDEX api_keys_by_tenant (tenant_id=?)"],
    ["later page", { limit: 20, cursor: "" }, "SEARCH api_keys USING INDEX api_keys_by_tenant (tenant_id=? AND seq<?)"],
    ["filtered page", { limit: 20, cursor: "", status: "active", environment: "live", type: "publishable" }, "SEARCH api_keys USING INDEX api_keys_by_tenant (tenant_id=? AND seq<?)"],
    ["revoked, all", { limit: 20, status: "all" }, "SEARCH api_keys USING INDEX api_keys_by_tenant (tenant_id=?)"],
    ["expiring-soon page (V5)", { limit: 20, cursor: "", expiresWithinMs: 7 * 86_400_000 }, "SEARCH api_keys USING INDEX api_keys_by_tenant (tenant_id=? AND seq<?)"],
  ] as const)("lists a %s through api_keys_by_tenant, with no sort step and no scan", async (_label, query, expected) => {
    prepared.length = 0;
    await repo.listKeys("t1", { ...query, ...("cursor" in query ? { cursor: encodeCursor("k", 10) } : {}) });
    const select = prepared.filter((s) => /FROM api_keys\s+WHERE tenant_id = @tenantId/.test(s));
    expect(select).toHaveLength(1);
    expect(planOf(select[0]!, listParams)).toEqual([expected]);
  });

  const auditParams = { tenantId: "t1", after: 10, keyId: newKey(1).keyId, action: "api_key.created", since: 1_700_000_000_000, limit: 21 };

  it.each([
    ["first page", { limit: 20 }, "SEARCH audit_events USING INDEX audit_events_by_tenant (tenant_id=?)"],
    ["later page", { limit: 20, cursor: "" }, "SEARCH audit_events USING INDEX audit_events_by_tenant (tenant_id=? AND seq<?)"],
    ["page of one action since a date", { limit: 20, action: "api_key.created", since: 1 }, "SEARCH audit_events USING INDEX audit_events_by_tenant (tenant_id=?)"],
    ["page of one key", { limit: 20, keyId: newKey(1).keyId }, "SEARCH audit_events USING INDEX audit_events_by_key (key_id=?)"],
    ["later page of one key", { limit: 20, cursor: "", keyId: newKey(1).keyId }, "SEARCH audit_events USING INDEX audit_events_by_key (key_id=? AND seq<?)"],
  ] as const)("lists audit events, a %s, through an index, with no sort step and no scan (V4)", async (_label, query, expected) => {
    prepared.length = 0;
    await repo.listAuditEvents("t1", { ...query, ...("cursor" in query ? { cursor: encodeCursor("a", 10) } : {}) });
    const select = prepared.filter((s) => /FROM audit_events WHERE tenant_id = @tenantId/.test(s));
    expect(select).toHaveLength(1);
    expect(planOf(select[0]!, auditParams)).toEqual([expected]);
  });
});
