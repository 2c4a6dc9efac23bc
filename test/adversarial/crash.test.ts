import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { hashApiKey } from "../../src/keys/secret.js";
import { acknowledgedCreates, countListedKeys, sendCreates, type Acknowledged } from "../helpers/crash.js";
import { recordFigures } from "../helpers/figures.js";
import { session } from "../helpers/rpc.js";
import { spawnClient, spawnRaw, tempDir, within, type RawServer } from "../helpers/spawn.js";
import { merchantToken, TEST_SECRET } from "../helpers/tokens.js";

const ROUNDS = 3;
const CREATES_PER_ROUND = 400;
const KILL_AFTER_ANSWERS = 150;
const TENANT = "merchant_crash";

// Power is not cut here — the process is. SQLite in WAL mode with synchronous=NORMAL must keep
// every transaction that committed before the kill, and a create answers only after its commit.
describe("crash safety: SIGKILL while 400 creates are in flight", () => {
  let dir: ReturnType<typeof tempDir>;
  let dbPath: string;
  let live: RawServer | undefined;

  beforeEach(() => {
    dir = tempDir();
    dbPath = join(dir.path, "keys.db");
  });
  afterEach(async () => {
    if (live && live.child.exitCode === null && live.child.signalCode === null) {
      live.child.kill("SIGKILL");
      await live.exited;
    }
    dir.remove();
  });

  it(`keeps every acknowledged key, its hash and its audit row across ${ROUNDS} kills`, async () => {
    const env = {
      API_KEYS_MCP_JWT_SECRET: TEST_SECRET,
      API_KEYS_MCP_DB: dbPath,
      API_KEYS_MCP_TOKEN: await merchantToken(TENANT, "user_crash"),
      API_KEYS_MCP_RATE_LIMIT_WRITE: "1000000",
      API_KEYS_MCP_LOG_LEVEL: "warn",
    };
    const acknowledged: Acknowledged[] = [];
    let midFlightKills = 0;
    let round = 0;
    for (; midFlightKills < ROUNDS && round < 2 * ROUNDS; round++) {
      live = spawnRaw(env);
      await session(live).initialize();
      // All 400 requests in one write, so they are all in the server's hands at once.
      const firstId = 1000;
      sendCreates(live, firstId, CREATES_PER_ROUND, (i) => `crash ${round}.${i}`);
      await live.waitForStdout((out) => out.length >= 1 + KILL_AFTER_ANSWERS, 30_000);
      live.child.kill("SIGKILL");
      expect(await within(live.exited, 10_000, "death by SIGKILL")).toEqual({ code: null, signal: "SIGKILL" });

      const outcome = acknowledgedCreates(live, firstId);
      expect(outcome.errors).toEqual([]);
      expect(outcome.acknowledged.length).toBeGreaterThanOrEqual(KILL_AFTER_ANSWERS);
      acknowledged.push(...outcome.acknowledged);
      // A round counts only if the kill landed mid-way; on a loaded machine the server may
      // occasionally answer all 400 before the signal arrives, and then the round is run again.
      if (outcome.acknowledged.length < CREATES_PER_ROUND) midFlightKills += 1;
    }
    expect(midFlightKills).toBe(ROUNDS);

    const db = new Database(dbPath);
    let stored: number;
    try {
      expect(db.pragma("integrity_check", { simple: true })).toBe("ok");
      const keyRow = db.prepare("SELECT tenant_id, key_hash, prefix FROM api_keys WHERE key_id = ?");
      const createdEvents = db.prepare("SELECT COUNT(*) FROM audit_events WHERE action = 'api_key.created' AND key_id = ? AND tenant_id = ?").pluck();
      const missing = acknowledged.filter(({ keyId }) => keyRow.get(keyId) === undefined).map(({ keyId }) => keyId);
      expect(missing).toEqual([]);
      for (const { keyId, plaintext } of acknowledged) {
        expect(keyRow.get(keyId)).toEqual({ tenant_id: TENANT, key_hash: hashApiKey(plaintext), prefix: plaintext.slice(0, 12) });
        expect(createdEvents.get(keyId, TENANT)).toBe(1);
      }
      // Committed but never answered (the kill came between commit and reply) is allowed; a key
      // without its audit row, or an audit row without its key, is not.
      stored = db.prepare("SELECT COUNT(*) FROM api_keys").pluck().get() as number;
      expect(db.prepare("SELECT COUNT(*) FROM audit_events WHERE action = 'api_key.created'").pluck().get()).toBe(stored);
      expect(
        db.prepare("SELECT COUNT(*) FROM api_keys k JOIN audit_events e ON e.key_id = k.key_id AND e.action = 'api_key.created'").pluck().get(),
      ).toBe(stored);
      expect(db.prepare("SELECT COUNT(*) FROM audit_events WHERE action <> 'api_key.created'").pluck().get()).toBe(0);
    } finally {
      db.close();
    }

    // A server restarted on the crashed file serves every key.
    const restarted = await spawnClient(env);
    try {
      expect(await countListedKeys(restarted)).toBe(stored);
    } finally {
      await restarted.close();
    }

    recordFigures("crash", {
      rounds: round,
      creates_sent: round * CREATES_PER_ROUND,
      sigkills: round,
      sigkills_mid_flight: midFlightKills,
      acknowledged: acknowledged.length,
      committed: stored,
      committed_unanswered: stored - acknowledged.length,
      lost: 0,
    });
  }, 120_000);
});
