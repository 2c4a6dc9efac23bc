import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { verifySqliteAuditChain } from "../../src/store/sqlite/audit-chain.js";
import { openDatabase } from "../../src/store/sqlite/database.js";
import { MIGRATIONS } from "../../src/store/sqlite/migrations/index.js";
import { spawnClient, tempDir, type SpawnedClient } from "../helpers/spawn.js";
import { merchantToken, TEST_SECRET } from "../helpers/tokens.js";

const require = createRequire(import.meta.url);
const LATEST = MIGRATIONS.at(-1)!.version;

/** Every key id the tenant can see, all statuses, walking every page. */
async function listAll(server: SpawnedClient): Promise<{ key_id: string; created_by: string; name: string }[]> {
  const keys: { key_id: string; created_by: string; name: string }[] = [];
  let cursor: string | null = null;
  do {
    const outcome = await server.call("list_api_keys", { status: "all", limit: 100, ...(cursor === null ? {} : { cursor }) });
    if (!outcome.ok) throw new Error(`list_api_keys failed: ${outcome.code}`);
    keys.push(...(outcome.data.keys as { key_id: string; created_by: string; name: string }[]));
    cursor = outcome.data.next_cursor as string | null;
  } while (cursor !== null);
  return keys;
}

describe("several server processes on one database file (S1)", () => {
  let dir: ReturnType<typeof tempDir>;
  let dbPath: string;
  let servers: SpawnedClient[] = [];

  beforeEach(() => {
    dir = tempDir();
    dbPath = join(dir.path, "shared.db");
  });
  afterEach(async () => {
    await Promise.all(servers.map((server) => server.close()));
    servers = [];
    dir.remove();
  });

  /** Two servers started at the same moment on one fresh file, acting for one merchant as two users. */
  async function startPair(): Promise<[SpawnedClient, SpawnedClient]> {
    const env = async (sub: string) => ({
      API_KEYS_MCP_JWT_SECRET: TEST_SECRET,
      API_KEYS_MCP_DB: dbPath,
      API_KEYS_MCP_TOKEN: await merchantToken("merchant_shared", sub),
      API_KEYS_MCP_RATE_LIMIT_WRITE: "1000",
    });
    const [envA, envB] = await Promise.all([env("user_a"), env("user_b")]);
    const [a, b] = await Promise.all([spawnClient(envA), spawnClient(envB)]);
    servers.push(a, b);
    return [a, b];
  }

  const created = (outcome: Awaited<ReturnType<SpawnedClient["call"]>>): string => {
    if (!outcome.ok) throw new Error(`create_api_key failed: ${outcome.code}: ${outcome.text}`);
    return outcome.data.key.key_id as string;
  };

  it("shows each process the keys the other created", async () => {
    const [a, b] = await startPair();
    const order: string[] = [];
    for (let i = 0; i < 3; i++) {
      order.push(created(await a.call("create_api_key", { name: `from a ${i}` })));
      order.push(created(await b.call("create_api_key", { name: `from b ${i}` })));
    }
    const expected = order.map((id, i) => ({ key_id: id, created_by: i % 2 ? "user_b" : "user_a" })).reverse();
    for (const server of [a, b]) {
      const keys = await listAll(server);
      expect(keys.map(({ key_id, created_by }) => ({ key_id, created_by }))).toEqual(expected);
    }
    // A change made through one process is what the other reads next.
    const revoked = await b.call("delete_api_key", { key_id: order[0] });
    expect(revoked.ok).toBe(true);
    const seen = await a.call("get_api_key", { key_id: order[0] });
    expect(seen.ok && seen.data.key.status).toBe("revoked");
  });

  it("commits every one of 50 concurrent creates from each process, each with exactly one audit row, in one hash chain", async () => {
    const [a, b] = await startPair();
    const burst = (server: SpawnedClient, label: string) =>
      Array.from({ length: 50 }, (_, i) => server.call("create_api_key", { name: `${label} ${i}` }));
    const outcomes = await Promise.all([...burst(a, "a"), ...burst(b, "b")]);
    const failures = outcomes.filter((outcome) => !outcome.ok);
    expect(failures).toEqual([]);
    const ids = outcomes.map(created);
    expect(new Set(ids).size).toBe(100);

    const listed = await listAll(a);
    expect(listed.map((key) => key.key_id).sort()).toEqual([...ids].sort());
    expect(listed.filter((key) => key.created_by === "user_a")).toHaveLength(50);
    expect(listed.filter((key) => key.created_by === "user_b")).toHaveLength(50);

    const db = new Database(dbPath, { readonly: true });
    try {
      expect(db.prepare("SELECT COUNT(*) FROM api_keys").pluck().get()).toBe(100);
      expect(db.prepare("SELECT COUNT(*) FROM audit_events").pluck().get()).toBe(100);
      expect(db.prepare("SELECT action, outcome, COUNT(*) AS n FROM audit_events GROUP BY action, outcome").all()).toEqual([
        { action: "api_key.created", outcome: "success", n: 100 },
      ]);
      // Each key has its own created event, and no event names a key that is not there.
      expect(
        db
          .prepare(
            `SELECT COUNT(*) FROM api_keys k JOIN audit_events e ON e.key_id = k.key_id
             WHERE e.action = 'api_key.created' AND e.actor = k.created_by AND e.occurred_at = k.created_at`,
          )
          .pluck()
          .get(),
      ).toBe(100);
      expect(db.prepare("SELECT COUNT(DISTINCT key_id) FROM audit_events").pluck().get()).toBe(100);
      // Both processes appended to one hash chain (S4): each row links to the row before it.
      const head = db.prepare("SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1").pluck().get();
      expect(verifySqliteAuditChain(db)).toEqual({ ok: true, rows: 100, head, unkeyed: 100 });
      expect(db.pragma("user_version", { simple: true })).toBe(LATEST);
    } finally {
      db.close();
    }
  });

  // Two processes starting at once on a fresh file both switch it to WAL. While one holds the
  // write lock of a file still in rollback-journal mode, `PRAGMA journal_mode = WAL` in the other
  // fails at once with SQLITE_BUSY: SQLite does not call the busy handler there (it would risk a
  // deadlock), so openDatabase retries by itself within the busy timeout. Here another process
  // holds the write lock for 0.7 s, well inside the 5 s busy timeout.
  it("opens a fresh file while another process briefly holds its write lock", async () => {
    const raw = new Database(dbPath);
    raw.exec("CREATE TABLE other_tool (x INTEGER)");
    raw.close();
    const holder = spawn(
      process.execPath,
      [
        "-e",
        `const Database = require(${JSON.stringify(require.resolve("better-sqlite3"))});
         const db = new Database(${JSON.stringify(dbPath)});
         db.exec("BEGIN IMMEDIATE");
         process.stdout.write("locked\\n");
         setTimeout(() => { db.exec("COMMIT"); db.close(); }, 700);`,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    const exited = new Promise((resolve) => holder.on("exit", resolve));
    try {
      await new Promise((resolve) => holder.stdout.once("data", resolve));
      const db = openDatabase(dbPath);
      try {
        expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
        expect(db.pragma("user_version", { simple: true })).toBe(LATEST);
      } finally {
        db.close();
      }
    } finally {
      await exited;
    }
  });
});
