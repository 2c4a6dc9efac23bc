import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { auditHash, GENESIS_HASH, type ChainedRow } from "../../src/audit/chain.js";
import { verifySqliteAuditChain } from "../../src/store/sqlite/audit-chain.js";
import { openDatabase } from "../../src/store/sqlite/database.js";
import { SqliteKeyRepository } from "../../src/store/sqlite/repository.js";
import { newKey } from "../helpers/keys.js";
import { tempDir } from "../helpers/spawn.js";
import { runCli } from "../helpers/cli.js";

const ALICE = { tenantId: "merchant_a", subject: "alice", client: null };
const AUDIT_KEY = "audit-key-0123456789abcdef-0123456789";

/** `api-keys-mcp audit verify …` in-process, with the environment given. */
function auditVerify(args: string[], env: Record<string, string> = {}) {
  return runCli(["audit", "verify", ...args], env, "/nonexistent-home");
}

/** The rows of the chain as stored, oldest first. */
function storedRows(db: Database.Database): (ChainedRow & { seq: number; hash: string; prev_hash: string; hash_alg: string })[] {
  return db.prepare("SELECT * FROM audit_events ORDER BY seq").all() as never;
}

describe("the audit table against every SQL path that could remove or replace a row", () => {
  let db: Database.Database;
  beforeEach(async () => {
    db = openDatabase(":memory:");
    const repository = new SqliteKeyRepository(db, { closeDatabase: false });
    for (const name of ["one", "two", "three"]) await repository.createKey(ALICE, newKey(name), 1_000);
    await repository.close();
  });
  afterEach(() => db.close());

  it.each([
    ["INSERT OR REPLACE on the same seq", "INSERT OR REPLACE INTO audit_events (seq, event_id, occurred_at, action, outcome) VALUES (3, 'evt_forged', 1, 'auth.denied', 'denied')"],
    ["REPLACE on the same event id", "REPLACE INTO audit_events (event_id, occurred_at, action, outcome) SELECT event_id, 1, 'auth.denied', 'denied' FROM audit_events WHERE seq = 2"],
    ["an UPSERT that updates", "INSERT INTO audit_events (seq, event_id, occurred_at, action, outcome) VALUES (1, 'evt_forged', 1, 'auth.denied', 'denied') ON CONFLICT (seq) DO UPDATE SET action = 'auth.denied'"],
    ["an UPSERT on the event id", "INSERT INTO audit_events (event_id, occurred_at, action, outcome) SELECT event_id, 1, 'auth.denied', 'denied' FROM audit_events WHERE seq = 1 ON CONFLICT (event_id) DO UPDATE SET outcome = 'denied'"],
    ["INSERT OR IGNORE over an existing row", "INSERT OR IGNORE INTO audit_events (seq, event_id, occurred_at, action, outcome) VALUES (2, 'evt_x', 1, 'auth.denied', 'denied')"],
  ])("refuses %s and leaves every row as it was", (_label, sql) => {
    const before = storedRows(db);
    expect(() => db.exec(sql)).toThrow("audit_events is append-only");
    expect(storedRows(db)).toEqual(before);
    expect(verifySqliteAuditChain(db)).toMatchObject({ ok: true, rows: 3 });
  });
});

describe("audit verify --expect-head, and the keyed chain", () => {
  let dir: ReturnType<typeof tempDir>;
  let dbPath: string;
  beforeEach(() => {
    dir = tempDir();
    dbPath = join(dir.path, "keys.db");
  });
  afterEach(() => dir.remove());

  async function write(names: string[], auditKey?: string): Promise<void> {
    const repository = new SqliteKeyRepository(openDatabase(dbPath), auditKey ? { auditKey: new TextEncoder().encode(auditKey) } : {});
    for (const name of names) await repository.createKey(ALICE, newKey(name), 1_000);
    await repository.close();
  }

  /**
   * What someone able to write the file can do without the audit key: cut the last rows, then
   * recompute every hash as plain SHA-256 so that the chain verifies on its own.
   */
  function cutAndRecompute(keep: number): void {
    const db = new Database(dbPath);
    db.exec("DROP TRIGGER audit_events_no_update; DROP TRIGGER audit_events_no_delete;");
    db.prepare("DELETE FROM audit_events WHERE seq > ?").run(keep);
    let previous = GENESIS_HASH;
    for (const row of storedRows(db)) {
      const hash = auditHash(previous, row);
      db.prepare("UPDATE audit_events SET prev_hash = ?, hash = ?, hash_alg = 'sha256' WHERE seq = ?").run(previous, hash, row.seq);
      previous = hash;
    }
    db.close();
  }

  const headOf = (stdout: string) => /head hash ([0-9a-f]{64})/.exec(stdout)![1]!;

  it("passes while the head taken earlier is still in the chain, also after more rows were added", async () => {
    await write(["one", "two"]);
    const first = await auditVerify(["--db", dbPath]);
    expect(first.code).toBe(0);
    await write(["three"]);
    const later = await auditVerify(["--db", dbPath, "--expect-head", headOf(first.stdout)]);
    expect(later).toMatchObject({ code: 0, stderr: "" });
    expect(later.stdout).toContain("3 rows checked");
    expect(later.stdout).toContain("the expected head is in the chain");
  });

  it("fails, exit 1, when rows were cut off the end and the chain recomputed so that it verifies on its own", async () => {
    await write(["one", "two", "three"]);
    const head = headOf((await auditVerify(["--db", dbPath])).stdout);
    cutAndRecompute(2);
    // On its own the shortened chain is intact: only the head kept elsewhere shows the cut.
    expect((await auditVerify(["--db", dbPath])).code).toBe(0);
    const checked = await auditVerify(["--db", dbPath, "--expect-head", head]);
    expect(checked.code).toBe(1);
    expect(checked.stdout).toMatch(/BROKEN: the expected head hash is not in the chain/);
  });

  it("refuses an --expect-head that is not a head hash, exit 2", async () => {
    await write(["one"]);
    expect(await auditVerify(["--db", dbPath, "--expect-head", "abc"])).toMatchObject({ code: 2, stdout: "" });
  });

  it("keys the chain with API_KEYS_MCP_AUDIT_KEY: it verifies with the key, and a chain recomputed without it does not", async () => {
    await write(["one", "two", "three"], AUDIT_KEY);
    const db = new Database(dbPath, { readonly: true });
    expect(new Set(storedRows(db).map((row) => row.hash_alg))).toEqual(new Set(["hmac-sha256"]));
    db.close();
    const keyed = await auditVerify(["--db", dbPath], { API_KEYS_MCP_AUDIT_KEY: AUDIT_KEY });
    expect(keyed.code).toBe(0);

    // Someone who can write the file but lacks the key changes a row and re-keys the rest with
    // a key of their own: the operator's key finds the first row they touched.
    const writer = new Database(dbPath);
    writer.exec("DROP TRIGGER audit_events_no_update");
    writer.prepare("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2").run();
    let previous = storedRows(writer)[0]!.hash;
    for (const row of storedRows(writer).slice(1)) {
      const hash = auditHash(previous, row, new TextEncoder().encode("a key of the attacker's own choosing, 32+ bytes"));
      writer.prepare("UPDATE audit_events SET prev_hash = ?, hash = ? WHERE seq = ?").run(previous, hash, row.seq);
      previous = hash;
    }
    writer.close();
    const checked = await auditVerify(["--db", dbPath], { API_KEYS_MCP_AUDIT_KEY: AUDIT_KEY });
    expect(checked.code).toBe(1);
    expect(checked.stdout).toContain("BROKEN at row 2");
    expect(checked.stdout).toContain("under the audit key");
  });

  it("finds rows rewritten as plain SHA-256 after keyed ones, and cannot check a keyed chain without the key (exit 2)", async () => {
    await write(["one"]);
    await write(["two", "three"], AUDIT_KEY);
    const mixed = await auditVerify(["--db", dbPath], { API_KEYS_MCP_AUDIT_KEY: AUDIT_KEY });
    expect(mixed.code).toBe(0);
    expect(mixed.stdout).toContain("the first 1 rows were chained before the audit key was set");

    const withoutKey = await auditVerify(["--db", dbPath]);
    expect(withoutKey.code).toBe(2);
    expect(withoutKey.stderr).toContain("give API_KEYS_MCP_AUDIT_KEY");

    // Without the key, the only way to make a changed keyed row fit is to write it as a plain
    // SHA-256 row: that downgrade is itself what the check finds.
    const db = new Database(dbPath);
    db.exec("DROP TRIGGER audit_events_no_update");
    db.prepare("UPDATE audit_events SET actor = 'mallory' WHERE seq = 3").run();
    const last = storedRows(db)[2]!;
    db.prepare("UPDATE audit_events SET hash_alg = 'sha256', hash = ? WHERE seq = 3").run(auditHash(last.prev_hash, last));
    db.close();
    const downgraded = await auditVerify(["--db", dbPath], { API_KEYS_MCP_AUDIT_KEY: AUDIT_KEY });
    expect(downgraded.code).toBe(1);
    expect(downgraded.stdout).toContain("BROKEN at row 3");
    expect(downgraded.stdout).toContain("not keyed although rows before it are");
  });

  it("refuses an audit key shorter than 32 bytes, exit 2, naming the fix", async () => {
    await write(["one"]);
    const short = await auditVerify(["--db", dbPath], { API_KEYS_MCP_AUDIT_KEY: "too short" });
    expect(short.code).toBe(2);
    expect(short.stderr).toContain("at least 32 bytes");
    expect(short.stderr).not.toContain("too short");
  });
});
