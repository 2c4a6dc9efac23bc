import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { auditHash, GENESIS_HASH } from "../../src/audit/chain.js";
import { verifySqliteAuditChain } from "../../src/store/sqlite/audit-chain.js";
import { openDatabase, STATEMENT_BUSY_WAIT_MS } from "../../src/store/sqlite/database.js";
import { migrate, SchemaTooNewError } from "../../src/store/sqlite/migrate.js";
import { initial } from "../../src/store/sqlite/migrations/010-initial.js";
import { MIGRATIONS } from "../../src/store/sqlite/migrations/index.js";
import { SqliteKeyRepository } from "../../src/store/sqlite/repository.js";
import { ONE_CALL_PER_TOOL } from "../helpers/rpc.js";
import { startTestServer } from "../helpers/server.js";
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

/**
 * Audit events as a version before migration 040 wrote them, chained over the columns it had
 * (no client), for tenant `t`, one a millisecond from 1000. Returns the chain's head hash.
 */
function writeOldAuditRows(db: Database.Database, events: { action: string; keyId: string }[]): string {
  const insert = db.prepare("INSERT INTO audit_events (event_id, occurred_at, action, outcome, tenant_id, actor, key_id, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
  let previous = GENESIS_HASH;
  for (const [n, { action, keyId }] of events.entries()) {
    const row = { event_id: `evt_${n}`, occurred_at: 1000 + n, action, outcome: "success", tenant_id: "t", actor: "s", key_id: keyId, tool: null, reason: null, changes: null };
    const hash = auditHash(previous, row);
    insert.run(row.event_id, row.occurred_at, row.action, row.outcome, row.tenant_id, row.actor, row.key_id, previous, hash);
    previous = hash;
  }
  return previous;
}

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

  it("knows 010-initial, 020-lifecycle, 030-scale-and-hardening and 040-agent-safety, 40 being the latest schema version", () => {
    expect(MIGRATIONS.map((m) => [m.version, m.name])).toEqual([
      [10, "initial"],
      [20, "lifecycle"],
      [30, "scale-and-hardening"],
      [40, "agent-safety"],
    ]);
    expect(LATEST).toBe(40);
  });

  it("creates the tables, indexes and triggers on a fresh file and records the latest version", () => {
    const db = track(openDatabase(file));
    expect(userVersion(db)).toBe(LATEST);
    expect(schemaOf(db).map(({ type, name, tbl_name }) => [type, name, tbl_name])).toEqual([
      ["index", "api_keys_by_environment", "api_keys"],
      ["index", "api_keys_by_tenant", "api_keys"],
      ["index", "api_keys_by_type", "api_keys"],
      ["index", "api_keys_revoked", "api_keys"],
      ["index", "api_keys_unrevoked", "api_keys"],
      ["index", "audit_events_by_action", "audit_events"],
      ["index", "audit_events_by_key", "audit_events"],
      ["index", "audit_events_by_tenant", "audit_events"],
      ["index", "idempotency_keys_by_expiry", "idempotency_keys"],
      ["index", "sqlite_autoindex_api_keys_1", "api_keys"],
      ["index", "sqlite_autoindex_api_keys_2", "api_keys"],
      ["index", "sqlite_autoindex_audit_events_1", "audit_events"],
      ["index", "sqlite_autoindex_store_meta_1", "store_meta"],
      ["table", "api_keys", "api_keys"],
      ["table", "audit_events", "audit_events"],
      ["table", "idempotency_keys", "idempotency_keys"],
      ["table", "key_usage", "key_usage"],
      ["table", "store_meta", "store_meta"],
      ["trigger", "audit_events_no_delete", "audit_events"],
      ["trigger", "audit_events_no_replace", "audit_events"],
      ["trigger", "audit_events_no_update", "audit_events"],
    ]);
    const indexed = (index: string) => (db.pragma(`index_info(${index})`) as { name: string }[]).map((c) => c.name);
    expect(indexed("api_keys_by_tenant")).toEqual(["tenant_id", "seq"]);
    expect(indexed("api_keys_unrevoked")).toEqual(["tenant_id", "seq"]);
    expect(indexed("api_keys_revoked")).toEqual(["tenant_id", "seq"]);
    expect(indexed("api_keys_by_environment")).toEqual(["tenant_id", "environment", "seq"]);
    expect(indexed("api_keys_by_type")).toEqual(["tenant_id", "type", "seq"]);
    expect(indexed("audit_events_by_tenant")).toEqual(["tenant_id", "occurred_at", "seq"]);
    expect(indexed("audit_events_by_action")).toEqual(["tenant_id", "action", "occurred_at", "seq"]);
    expect(indexed("audit_events_by_key")).toEqual(["key_id", "occurred_at", "seq"]);
    expect(indexed("idempotency_keys_by_expiry")).toEqual(["expires_at"]);
    const columns = (table: string) => (db.pragma(`table_info(${table})`) as { name: string }[]).map((c) => c.name);
    expect(columns("audit_events")).toEqual(expect.arrayContaining(["client_name", "client_version"]));
    expect(columns("idempotency_keys")).toEqual(["tenant_id", "tool", "key_hash", "fingerprint", "key_id", "delivery", "created_at", "expires_at"]);
    expect(db.prepare("SELECT length(value) FROM store_meta WHERE name = 'cursor_key'").pluck().get()).toBe(32);
    expect(indexed("sqlite_autoindex_api_keys_1")).toEqual(["key_id"]);
    expect(indexed("sqlite_autoindex_api_keys_2")).toEqual(["key_hash"]);
    expect(indexed("sqlite_autoindex_audit_events_1")).toEqual(["event_id"]);
  });

  it("is a no-op when run again, in the same connection and on reopening the file", async () => {
    const db = track(openDatabase(file));
    const repo = new SqliteKeyRepository(db);
    await repo.createKey({ tenantId: "t", subject: "s", client: null }, newKey(1), Date.now());
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
    const repo = new SqliteKeyRepository(db, { closeDatabase: false });
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

  it("upgrades a phase 2 file in place: every use count moves to key_usage, the columns leave api_keys, the chain still verifies", async () => {
    const old = track(new Database(file));
    expect(migrate(old, MIGRATIONS.slice(0, 2))).toEqual({ from: 0, to: 20 });
    const insert = old.prepare(
      `INSERT INTO api_keys (key_id, tenant_id, name, type, environment, prefix, key_hash, hash_version, created_at, updated_at, created_by, usage_count, last_used_at)
       VALUES (?, 't', ?, 'secret', 'test', 'sk_test_abcd', ?, 1, 1000, 1000, 's', ?, ?)`,
    );
    const counts: [number, number | null][] = [[0, null], [5, 4000], [1, 2000], [0, null], [123_456, 9000]];
    counts.forEach(([count, last], n) => insert.run(newKey(n).keyId, `key ${n}`, newKey(n).hash, count, last));
    const previous = writeOldAuditRows(old, [0, 1, 2].map((n) => ({ action: "api_key.created", keyId: newKey(n).keyId })));
    old.close();

    const db = track(openDatabase(file));
    expect(userVersion(db)).toBe(LATEST);
    const columns = (db.pragma("table_info(api_keys)") as { name: string }[]).map((c) => c.name);
    expect(columns).not.toContain("usage_count");
    expect(columns).not.toContain("last_used_at");
    expect(db.prepare("SELECT key_seq, usage_count, last_used_at FROM key_usage ORDER BY key_seq").raw().all()).toEqual([
      [2, 5, 4000],
      [3, 1, 2000],
      [5, 123_456, 9000],
    ]);
    const repo = new SqliteKeyRepository(db, { closeDatabase: false });
    for (const [n, [count, last]] of counts.entries()) {
      expect(await repo.getKey("t", newKey(n).keyId)).toMatchObject({ usageCount: count, lastUsedAt: last });
    }
    await repo.close();
    expect(verifySqliteAuditChain(db)).toEqual({ ok: true, rows: 3, head: previous, unkeyed: 3 });
  });

  it("upgrades a phase 3 file in place: its audit rows have no client and keep verifying, new rows record theirs", async () => {
    const old = track(new Database(file));
    expect(migrate(old, MIGRATIONS.slice(0, 3))).toEqual({ from: 0, to: 30 });
    // Rows as version 30 wrote them: chained over the columns it had.
    writeOldAuditRows(old, ["api_key.created", "api_key.revoked"].map((action) => ({ action, keyId: newKey(1).keyId })));
    old.close();

    const db = track(openDatabase(file));
    expect(userVersion(db)).toBe(LATEST);
    expect(db.prepare("SELECT client_name, client_version FROM audit_events ORDER BY seq").raw().all()).toEqual([
      [null, null],
      [null, null],
    ]);
    const repo = new SqliteKeyRepository(db, { closeDatabase: false });
    await repo.createKey({ tenantId: "t", subject: "s", client: { name: "claude-code", version: "2.1.0" } }, newKey(2), 3000);
    await repo.close();
    expect(db.prepare("SELECT client_name, client_version FROM audit_events ORDER BY seq").raw().all()).toEqual([
      [null, null],
      [null, null],
      ["claude-code", "2.1.0"],
    ]);
    expect(verifySqliteAuditChain(db)).toMatchObject({ ok: true, rows: 3 });
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
      "the database has schema version 41, newer than this api-keys-mcp supports (40); upgrade api-keys-mcp, or point API_KEYS_MCP_DB at another file",
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

  it("opens a file database in WAL mode with foreign keys on, NORMAL sync, and a statement busy wait short enough never to hold the thread", () => {
    db = openDatabase(join(dir.path, "keys.db"));
    expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(db.pragma("foreign_keys", { simple: true })).toBe(1);
    expect(db.pragma("busy_timeout", { simple: true })).toBe(STATEMENT_BUSY_WAIT_MS);
    expect(STATEMENT_BUSY_WAIT_MS).toBeLessThanOrEqual(50);
    expect(db.pragma("synchronous", { simple: true })).toBe(1);
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
    const repo = new SqliteKeyRepository(db);
    await repo.createKey({ tenantId: "t", subject: "s", client: null }, newKey(1), Date.now());
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

describe("query plans: every listing walks an index in page order", () => {
  let db: Database.Database;
  let repo: SqliteKeyRepository;
  const prepared: string[] = [];
  const NOW = 1_700_000_000_000;

  beforeEach(async () => {
    db = openDatabase(":memory:");
    // Record the SQL the repository prepares (the real statements run unchanged), so the plans
    // below are those of the repository's own queries, not of copies that could drift.
    const prepare = db.prepare.bind(db);
    db.prepare = ((source: string) => {
      prepared.push(source);
      return prepare(source);
    }) as typeof db.prepare;
    repo = new SqliteKeyRepository(db, { listWindowRows: 5 });
    for (let n = 0; n < 30; n++) await repo.createKey({ tenantId: n % 2 ? "t1" : "t2", subject: "s", client: null }, newKey(n), NOW);
  });
  afterEach(() => {
    prepared.length = 0;
    db.close();
  });

  const planOf = (source: string) => {
    const params = source.match(/@\w+/g)?.map((name) => name.slice(1)) ?? [];
    const values = Object.fromEntries(params.map((name) => [name, name === "tenantId" ? "t1" : name === "environment" ? "test" : name === "type" ? "secret" : name === "action" || name === "keyId" ? "x" : 1]));
    const positional = Array.from(source.matchAll(/\?/g), () => "x");
    return (db.prepare(`EXPLAIN QUERY PLAN ${source}`).all(params.length > 0 ? values : positional) as { detail: string }[]).map((row) => row.detail);
  };

  /** The statements a call prepared, with their plans: a search of the walked index (and the usage join), never a scan or a sort. */
  /** The SELECTs a call prepares (on a repository of its own, so that it prepares them anew), with their plans. */
  const plansOf = async (call: (fresh: SqliteKeyRepository) => Promise<unknown>, matching?: RegExp) => {
    prepared.length = 0;
    const fresh = new SqliteKeyRepository(db, { listWindowRows: 5, closeDatabase: false });
    // Statements prepared once, up front, are kept only when asked for by their text.
    if (!matching) prepared.length = 0;
    await call(fresh);
    await fresh.close();
    return prepared.filter((source) => /^\s*SELECT/.test(source) && (!matching || matching.test(source))).map((source) => ({ source, plan: planOf(source) }));
  };

  const expectIndexOnly = (plans: { source: string; plan: string[] }[], index: RegExp) => {
    expect(plans.length).toBeGreaterThan(0);
    for (const { source, plan } of plans) {
      expect(plan.join("\n"), source).not.toMatch(/\bSCAN\b|TEMP B-TREE/);
      expect(plan[0], source).toMatch(index);
    }
  };

  it("gets one key through the key_id unique index", async () => {
    const plans = await plansOf((fresh) => fresh.getKey("t1", newKey(1).keyId), /WHERE k\.key_id = \?/);
    expect(plans.map((p) => p.plan)).toEqual([
      ["SEARCH k USING INDEX sqlite_autoindex_api_keys_1 (key_id=?)", "SEARCH u USING INTEGER PRIMARY KEY (rowid=?) LEFT-JOIN"],
    ]);
  });

  it("finds a key by its hash, the verification hot path, through the key_hash unique index", async () => {
    const plans = await plansOf(async (fresh) => expect(await fresh.findKeyByHash(newKey(1).hash)).toMatchObject({ keyId: newKey(1).keyId }), /WHERE k\.key_hash = \?/);
    expect(plans.map((p) => p.plan)).toEqual([
      ["SEARCH k USING INDEX sqlite_autoindex_api_keys_2 (key_hash=?)", "SEARCH u USING INTEGER PRIMARY KEY (rowid=?) LEFT-JOIN"],
    ]);
  });

  it("finds an idempotency record through its primary key, and deletes expired ones through the expiry index", async () => {
    const claim = { tool: "create_api_key", keyHash: "a".repeat(64), fingerprint: "b".repeat(64), delivery: "inline" } as const;
    const plans = await plansOf((fresh) => fresh.findIdempotencyRecord("t1", claim.tool, claim.keyHash), /FROM idempotency_keys WHERE tenant_id/);
    expect(plans.map((p) => p.plan)).toEqual([["SEARCH idempotency_keys USING PRIMARY KEY (tenant_id=? AND tool=? AND key_hash=?)"]]);
    const sweep = prepared.filter((source) => /DELETE FROM idempotency_keys/.test(source));
    expect(sweep).toHaveLength(1);
    const plan = planOf(sweep[0]!).join("\n");
    expect(plan).toMatch(/SEARCH idempotency_keys USING (COVERING )?INDEX idempotency_keys_by_expiry \(expires_at<\?\)/);
    expect(plan).not.toMatch(/\bSCAN\b|TEMP B-TREE/);
  });

  const statuses = [undefined, "active", "expired", "revoked", "all"] as const;
  const environments = [undefined, "live"] as const;
  const types = [undefined, "publishable"] as const;
  const withins = [undefined, 86_400_000] as const;
  const combinations = statuses.flatMap((status) =>
    environments.flatMap((environment) => types.flatMap((type) => withins.map((expiresWithinMs) => ({ status, environment, type, expiresWithinMs })))),
  );

  it.each(combinations)("lists keys with %o through the index that answers the filter, page after page", async (filters) => {
    const query = Object.fromEntries(Object.entries(filters).filter(([, v]) => v !== undefined));
    const expected =
      filters.status === "revoked" ? /USING (COVERING )?INDEX api_keys_revoked/
      : filters.environment ? /USING (COVERING )?INDEX api_keys_by_environment/
      : filters.type ? /USING (COVERING )?INDEX api_keys_by_type/
      : filters.status === "all" ? /USING (COVERING )?INDEX api_keys_by_tenant/
      : /USING (COVERING )?INDEX api_keys_unrevoked/;
    const first = await repo.listKeys("t1", { now: NOW, limit: 2, ...query });
    expectIndexOnly(await plansOf((fresh) => fresh.listKeys("t1", { now: NOW, limit: 2, ...query })), expected);
    if (first.nextCursor !== null) {
      expectIndexOnly(await plansOf((fresh) => fresh.listKeys("t1", { now: NOW, limit: 2, ...query, cursor: first.nextCursor! })), expected);
    }
  });

  it.each([
    ["all of a tenant's events", {}, /USING (COVERING )?INDEX audit_events_by_tenant/],
    ["since a date", { since: NOW - 1 }, /USING (COVERING )?INDEX audit_events_by_tenant \(tenant_id=\? AND occurred_at[<>]/],
    ["of one action", { action: "api_key.created" }, /USING (COVERING )?INDEX audit_events_by_action/],
    ["of one action since a date", { action: "api_key.created", since: NOW - 1 }, /USING (COVERING )?INDEX audit_events_by_action \(tenant_id=\? AND action=\? AND occurred_at[<>]/],
    ["of one key", { keyId: newKey(1).keyId }, /USING (COVERING )?INDEX audit_events_by_key/],
    ["of one key and action since a date", { keyId: newKey(1).keyId, action: "api_key.created", since: NOW - 1 }, /USING (COVERING )?INDEX audit_events_by_key \(key_id=\? AND occurred_at[<>]/],
  ] as const)("lists audit events %s through a time-ordered index, page after page", async (_label, query, expected) => {
    const first = await repo.listAuditEvents("t1", { limit: 2, ...query });
    expectIndexOnly(await plansOf((fresh) => fresh.listAuditEvents("t1", { limit: 2, ...query })), expected);
    if (first.nextCursor !== null) {
      expectIndexOnly(await plansOf((fresh) => fresh.listAuditEvents("t1", { limit: 2, ...query, cursor: first.nextCursor! })), expected);
    }
  });
});
