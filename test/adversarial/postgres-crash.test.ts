import pg from "pg";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { hashApiKey } from "../../src/keys/secret.js";
import { createPool } from "../../src/store/postgres/pool.js";
import { acknowledgedCreates, countListedKeys, sendCreates, type Acknowledged } from "../helpers/crash.js";
import { recordFigures } from "../helpers/figures.js";
import { auditVerify } from "../helpers/postgres-checks.js";
import { createTestDatabase } from "../helpers/postgres.js";
import { session } from "../helpers/rpc.js";
import { spawnClient, spawnRaw, within, type RawServer, type SpawnedClient } from "../helpers/spawn.js";
import { merchantToken, TEST_SECRET } from "../helpers/tokens.js";

const ROUNDS = 3;
const CREATES_PER_ROUND = 400;
const KILL_AFTER_ANSWERS = 150;
/** Creates another instance sends while each kill happens; none may fail. */
const SURVIVOR_CREATES = 60;
const TENANT = "merchant_pg_crash";

// The process is killed, not PostgreSQL: a create answers only after its transaction committed,
// so every answered key is there; a transaction cut off by the kill is rolled back by PostgreSQL
// when the connection drops, releasing the key and head row locks another instance is waiting on.
describe("crash safety on PostgreSQL: SIGKILL of one instance while 400 creates are in flight and another instance writes", () => {
  let url: string;
  let admin: pg.Pool;
  let live: RawServer | undefined;
  let survivor: SpawnedClient | undefined;

  beforeEach(async () => {
    url = await createTestDatabase();
    admin = createPool(url, { max: 2 });
  });
  afterEach(async () => {
    if (live && live.child.exitCode === null && live.child.signalCode === null) {
      live.child.kill("SIGKILL");
      await live.exited;
    }
    await survivor?.close();
    survivor = undefined;
    await admin.end();
  });

  it(`keeps every acknowledged key, its hash and its audit row across ${ROUNDS} kills, and the other instance never fails`, async () => {
    const env = (user: string) =>
      merchantToken(TENANT, user).then((token) => ({
        API_KEYS_MCP_JWT_SECRET: TEST_SECRET,
        API_KEYS_MCP_DATABASE_URL: url,
        API_KEYS_MCP_TOKEN: token,
        API_KEYS_MCP_RATE_LIMIT_WRITE: "1000000",
        API_KEYS_MCP_RATE_LIMIT_READ: "1000000",
        API_KEYS_MCP_LOG_LEVEL: "warn",
      }));
    const crashEnv = await env("user_crash");
    survivor = await spawnClient(await env("user_survivor"));
    const acknowledged: Acknowledged[] = [];
    const survivorKeys: Acknowledged[] = [];
    const survivorFailures: string[] = [];
    let midFlightKills = 0;
    let round = 0;
    for (; midFlightKills < ROUNDS && round < 2 * ROUNDS; round++) {
      live = spawnRaw(crashEnv);
      await session(live).initialize();
      // All 400 requests in one write, so they are all in the server's hands at once; the other
      // instance writes at the same time, queueing on the same head row.
      const firstId = 1000;
      sendCreates(live, firstId, CREATES_PER_ROUND, (i) => `crash ${round}.${i}`);
      const beside = Promise.all(
        Array.from({ length: SURVIVOR_CREATES }, async (_, i) => {
          const outcome = await survivor!.call("create_api_key", { name: `survivor ${round}.${i}` });
          if (outcome.ok) survivorKeys.push({ keyId: outcome.data.key.key_id, plaintext: outcome.data.api_key });
          else survivorFailures.push(outcome.text);
        }),
      );
      await live.waitForStdout((out) => out.length >= 1 + KILL_AFTER_ANSWERS, 30_000);
      live.child.kill("SIGKILL");
      expect(await within(live.exited, 10_000, "death by SIGKILL")).toEqual({ code: null, signal: "SIGKILL" });
      await within(beside, 30_000, "the other instance's creates");

      const outcome = acknowledgedCreates(live, firstId);
      expect(outcome.errors).toEqual([]);
      expect(outcome.acknowledged.length).toBeGreaterThanOrEqual(KILL_AFTER_ANSWERS);
      acknowledged.push(...outcome.acknowledged);
      // A round counts only if the kill landed mid-way; on a loaded machine the server may
      // occasionally answer all 400 before the signal arrives, and then the round is run again.
      if (outcome.acknowledged.length < CREATES_PER_ROUND) midFlightKills += 1;
    }
    expect(midFlightKills).toBe(ROUNDS);
    expect(survivorFailures).toEqual([]);
    // After the last kill, the other instance still writes: nothing of the dead one holds a lock.
    const after = await within(survivor.call("create_api_key", { name: "after the kills" }), 10_000, "a create after the kills");
    expect(after.ok).toBe(true);
    if (after.ok) survivorKeys.push({ keyId: after.data.key.key_id, plaintext: after.data.api_key });

    const keyRows = new Map(
      (await admin.query<{ key_id: string; tenant_id: string; key_hash: string; prefix: string; created_by: string }>("SELECT key_id, tenant_id, key_hash, prefix, created_by FROM api_keys")).rows.map(
        (row) => [row.key_id, row],
      ),
    );
    const createdEvents = new Map(
      (
        await admin.query<{ key_id: string; n: number; actor: string }>(
          "SELECT key_id, count(*)::int AS n, min(actor) AS actor FROM audit_events WHERE action = 'api_key.created' AND tenant_id = $1 GROUP BY key_id",
          [TENANT],
        )
      ).rows.map((row) => [row.key_id, row]),
    );
    const check = (keys: Acknowledged[], user: string) => {
      const missing = keys.filter(({ keyId }) => !keyRows.has(keyId)).map(({ keyId }) => keyId);
      expect(missing).toEqual([]);
      for (const { keyId, plaintext } of keys) {
        expect(keyRows.get(keyId)).toEqual({ key_id: keyId, tenant_id: TENANT, key_hash: hashApiKey(plaintext), prefix: plaintext.slice(0, 12), created_by: user });
        expect(createdEvents.get(keyId)).toEqual({ key_id: keyId, n: 1, actor: user });
      }
    };
    check(acknowledged, "user_crash");
    check(survivorKeys, "user_survivor");
    // Committed but never answered (the kill came between commit and reply) is allowed; a key
    // without its audit row, or an audit row without its key, is not.
    const stored = keyRows.size;
    expect(createdEvents.size).toBe(stored);
    expect([...createdEvents.keys()].every((keyId) => keyRows.has(keyId))).toBe(true);
    expect((await admin.query("SELECT count(*)::int AS n FROM audit_events WHERE action <> 'api_key.created'")).rows[0]).toEqual({ n: 0 });
    const verification = await auditVerify(url);
    expect(verification).toMatchObject({ code: 0, stderr: "" });
    expect(verification.stdout).toMatch(new RegExp(`^audit chain intact: ${stored} rows checked`));

    // A new instance serves every key.
    const restarted = await spawnClient(crashEnv);
    try {
      expect(await countListedKeys(restarted)).toBe(stored);
    } finally {
      await restarted.close();
    }

    const crashStored = stored - survivorKeys.length;
    recordFigures("postgres-crash", {
      rounds: round,
      creates_sent: round * CREATES_PER_ROUND,
      sigkills: round,
      sigkills_mid_flight: midFlightKills,
      acknowledged: acknowledged.length,
      committed: crashStored,
      committed_unanswered: crashStored - acknowledged.length,
      other_instance_creates: survivorKeys.length,
      other_instance_errors: survivorFailures.length,
      lost: 0,
    });
  }, 120_000);
});
