import { existsSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { auditHash, GENESIS_HASH } from "../../src/audit/chain.js";
import { verifySqliteAuditChain } from "../../src/store/sqlite/audit-chain.js";
import { openDatabase } from "../../src/store/sqlite/database.js";
import { migrate } from "../../src/store/sqlite/migrate.js";
import { initial } from "../../src/store/sqlite/migrations/010-initial.js";
import { MIGRATIONS } from "../../src/store/sqlite/migrations/index.js";
import { SqliteKeyRepository } from "../../src/store/sqlite/repository.js";
import { newKeyId } from "../../src/keys/ids.js";
import { issueApiKey } from "../../src/keys/secret.js";
import { newKey } from "../helpers/keys.js";
import { runCli } from "../helpers/cli.js";
import { runCommand, tempDir } from "../helpers/spawn.js";

const ALICE = { tenantId: "merchant_a", subject: "alice", client: null };
const BOB = { tenantId: "merchant_b", subject: "bob", client: null };
/** Alice through an MCP client that named itself: rows 4 and 5 below record it. */
const ALICE_IN_CLAUDE = { ...ALICE, client: { name: "claude-code", version: "2.1.0" } };

/** Eight audited events of every kind, written through the real repository. */
async function writeHistory(repository: SqliteKeyRepository): Promise<void> {
  const one = newKey("one");
  const two = newKey("two");
  await repository.createKey(ALICE, one, Date.now());
  await repository.createKey(ALICE, two, Date.now());
  await repository.createKey(BOB, newKey("three"), Date.now());
  await repository.updateKey(ALICE_IN_CLAUDE, one.keyId, { name: "one, renamed", scopes: ["payments:read"] }, Date.now());
  const issued = issueApiKey("secret", "test");
  await repository.rotateKey(ALICE_IN_CLAUDE, two.keyId, { keyId: newKeyId(), prefix: issued.prefix, hash: issued.hash, hashVersion: 1, graceMs: 0 }, Date.now());
  await repository.revokeKey(ALICE, one.keyId, Date.now());
  await repository.recordDenial({ at: Date.now(), tool: "create_api_key", reason: "ERR_AUTH_INVALID", tenantId: null, actor: null, keyId: null });
  await repository.recordDenial({ at: Date.now(), tool: "delete_api_key", reason: "ERR_FORBIDDEN", tenantId: "merchant_a", actor: "rita", keyId: one.keyId });
}

describe("audit hash chain (S4)", () => {
  let dir: ReturnType<typeof tempDir>;
  let dbPath: string;

  beforeEach(async () => {
    dir = tempDir();
    dbPath = join(dir.path, "audit.db");
    const repository = new SqliteKeyRepository(openDatabase(dbPath));
    await writeHistory(repository);
    await repository.close();
  });
  afterEach(() => dir.remove());

  /** A raw connection with the append-only triggers dropped: what someone with the file could do. */
  function tamper(sql: string): void {
    const db = new Database(dbPath);
    db.exec("DROP TRIGGER audit_events_no_update; DROP TRIGGER audit_events_no_delete;");
    db.exec(sql);
    db.close();
  }

  function verify() {
    const db = new Database(dbPath, { readonly: true });
    try {
      return verifySqliteAuditChain(db);
    } finally {
      db.close();
    }
  }

  it("chains every row to the one before, from the genesis hash", () => {
    const db = new Database(dbPath, { readonly: true });
    const rows = db.prepare("SELECT * FROM audit_events ORDER BY seq").all() as Record<string, string | number | null>[];
    db.close();
    expect(rows).toHaveLength(8);
    let previous = GENESIS_HASH;
    for (const row of rows) {
      expect(row.prev_hash).toBe(previous);
      expect(row.hash).toBe(auditHash(previous, row as never));
      expect(row.hash).toMatch(/^[0-9a-f]{64}$/);
      previous = row.hash as string;
    }
    expect(verify()).toEqual({ ok: true, rows: 8, head: previous, unkeyed: 8 });
  });

  it("`audit verify` prints the rows checked and exits 0 on an intact chain", async () => {
    const run = await runCli(["audit", "verify", "--db", dbPath], {}, dir.path);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^audit chain intact: 8 rows checked; head hash [0-9a-f]{64}\n$/);
    // API_KEYS_MCP_DB works as well as --db.
    const byEnv = await runCli(["audit", "verify"], { API_KEYS_MCP_DB: dbPath }, dir.path);
    expect(byEnv.stdout).toBe(run.stdout);
  });

  it.each([
    ["a changed field", "UPDATE audit_events SET actor = 'mallory' WHERE seq = 4", 4, /content does not match/],
    ["changed changes", `UPDATE audit_events SET changes = '{"name":{"from":"one","to":"x"}}' WHERE seq = 4`, 4, /content does not match/],
    ["a changed client name", "UPDATE audit_events SET client_name = 'cursor' WHERE seq = 4", 4, /content does not match/],
    ["a changed client version", "UPDATE audit_events SET client_version = '9.9.9' WHERE seq = 5", 5, /content does not match/],
    ["a client removed", "UPDATE audit_events SET client_name = NULL, client_version = NULL WHERE seq = 4", 4, /content does not match/],
    ["a client put on a row written without one", "UPDATE audit_events SET client_name = 'claude-code', client_version = '2.1.0' WHERE seq = 3", 3, /content does not match/],
    ["a deleted row", "DELETE FROM audit_events WHERE seq = 3", 4, /prev_hash/],
    ["a deleted first row", "DELETE FROM audit_events WHERE seq = 1", 2, /prev_hash/],
    ["a replaced hash", "UPDATE audit_events SET hash = (CASE WHEN hash LIKE 'f%' THEN '0' ELSE 'f' END) || substr(hash, 2) WHERE seq = 5", 5, /content does not match/],
    ["swapped rows", "UPDATE audit_events SET seq = seq + 100 WHERE seq IN (6, 7); UPDATE audit_events SET seq = 13 WHERE seq = 106; UPDATE audit_events SET seq = 6 WHERE seq = 107; UPDATE audit_events SET seq = 7 WHERE seq = 13;", 6, /prev_hash/],
  ])("finds %s at the right row, and `audit verify` exits 1 naming it", async (_label, sql, brokenSeq, problem) => {
    tamper(sql);
    const result = verify();
    expect(result).toMatchObject({ ok: false, kind: "broken" });
    if (result.ok || result.kind !== "broken") return;
    expect(result.seq).toBe(brokenSeq);
    expect(result.problem).toMatch(problem);

    const run = await runCli(["audit", "verify", "--db", dbPath], {}, dir.path);
    expect(run.code).toBe(1);
    expect(run.stdout).toContain(`BROKEN at row ${brokenSeq} (event ${result.eventId})`);
  });

  it("catches a row whose hash was recomputed to fit, at the row after it", () => {
    const db = new Database(dbPath);
    db.exec("DROP TRIGGER audit_events_no_update");
    const row = db.prepare("SELECT * FROM audit_events WHERE seq = 3").get() as Record<string, string>;
    const forged = { ...row, actor: "mallory" };
    db.prepare("UPDATE audit_events SET actor = ?, hash = ? WHERE seq = 3").run("mallory", auditHash(row.prev_hash!, forged as never));
    db.close();
    expect(verify()).toMatchObject({ ok: false, seq: 4 });
  });

  it("keeps one chain across two connections writing in turn (as two processes would)", async () => {
    const first = new SqliteKeyRepository(openDatabase(dbPath));
    const second = new SqliteKeyRepository(openDatabase(dbPath));
    for (let i = 0; i < 5; i++) {
      await first.createKey(ALICE, newKey(`first ${i}`), Date.now());
      await second.createKey(BOB, newKey(`second ${i}`), Date.now());
    }
    await first.close();
    await second.close();
    expect(verify()).toMatchObject({ ok: true, rows: 18 });
  });

  it("answers exit 2 for a missing database, without creating it", async () => {
    const missing = join(dir.path, "nope.db");
    const run = await runCli(["audit", "verify", "--db", missing], {}, dir.path);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/cannot open/);
    expect(existsSync(missing)).toBe(false);
  });

  it("prints its usage for --help", async () => {
    const help = await runCli(["audit", "--help"], {}, dir.path);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Usage: api-keys-mcp audit verify/);
  });

  // The cases above run the command in-process; this one runs the built entry point, for the
  // exit status a script or a cron job sees (0 is covered by cli.test.ts).
  it("exits the built process with 1 for a broken chain and 2 for no database", async () => {
    tamper("DELETE FROM audit_events WHERE seq = 3");
    const [broken, missing] = await Promise.all([
      runCommand(["audit", "verify", "--db", dbPath], {}, dir.path),
      runCommand(["audit", "verify", "--db", join(dir.path, "nope.db")], {}, dir.path),
    ]);
    expect(broken).toMatchObject({ code: 1, signal: null, stderr: "" });
    expect(broken.stdout).toMatch(/^audit chain BROKEN at row 4 /);
    expect(missing).toMatchObject({ code: 2, signal: null, stdout: "" });
    expect(missing.stderr).toMatch(/^api-keys-mcp audit: cannot open/);
  });
});

describe("the chain under batched writes", () => {
  it("stays whole when two connections interleave batches and a batch is rolled back and rerun", async () => {
    const dir = tempDir();
    try {
      const path = join(dir.path, "batched.db");
      // Two repositories on one file: two writers, as two server processes would be.
      const first = new SqliteKeyRepository(openDatabase(path));
      const second = new SqliteKeyRepository(openDatabase(path));
      try {
        for (let round = 0; round < 5; round++) {
          const taken = newKey("taken");
          await first.createKey(ALICE, taken, Date.now());
          // One batch per connection per turn, interleaved; in the first connection's batch a
          // create reuses a key id, so that batch rolls back and each of its writes runs alone.
          const outcomes = await Promise.allSettled([
            ...Array.from({ length: 4 }, (_, i) => first.createKey(ALICE, newKey(`a${round}-${i}`), Date.now())),
            first.createKey(ALICE, { ...newKey("duplicate"), keyId: taken.keyId }, Date.now()),
            ...Array.from({ length: 4 }, (_, i) => second.createKey(BOB, newKey(`b${round}-${i}`), Date.now())),
            first.recordDenial({ at: Date.now(), tool: "get_api_key", reason: "ERR_FORBIDDEN", tenantId: "merchant_a", actor: "rita", keyId: null }),
          ]);
          expect(outcomes.filter((outcome) => outcome.status === "rejected")).toHaveLength(1);
        }
      } finally {
        await first.close();
        await second.close();
      }
      const db = new Database(path, { readonly: true });
      try {
        // 5 rounds × (1 + 4 + 4 creates + 1 denial); the failed create left no row.
        expect(db.prepare("SELECT COUNT(*) FROM audit_events").pluck().get()).toBe(50);
        expect(verifySqliteAuditChain(db)).toMatchObject({ ok: true, rows: 50 });
      } finally {
        db.close();
      }
    } finally {
      dir.remove();
    }
  });
});

describe("migration 020 chains the rows written before it", () => {
  it("hashes existing audit rows in order, and the append-only triggers are back", () => {
    const db = new Database(":memory:");
    migrate(db, [initial]);
    const insert = db.prepare(
      "INSERT INTO audit_events (event_id, occurred_at, action, outcome, tenant_id, actor, key_id, changes) VALUES (?, ?, 'api_key.created', 'success', 'm', 'a', ?, '{}')",
    );
    for (let i = 0; i < 5; i++) insert.run(`evt_old${i}`, 1000 + i, `key_old${i}`);

    expect(migrate(db)).toEqual({ from: 10, to: MIGRATIONS.at(-1)!.version });
    expect(verifySqliteAuditChain(db)).toMatchObject({ ok: true, rows: 5 });
    expect(() => db.exec("UPDATE audit_events SET actor = 'x'")).toThrow(/append-only/);
    expect(() => db.exec("DELETE FROM audit_events")).toThrow(/append-only/);
    db.close();
  });
});
